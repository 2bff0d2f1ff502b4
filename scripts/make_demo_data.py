"""Generate the small synthetic demo data sets under data/demo/.

Usage: python scripts/make_demo_data.py [--out data/demo] [--seed 13]

Writes
  ner/{train,val,test}.csv      Finnish NER sentences (tokens,tags CSV of Python list literals, IOB2)
  consensus/{train,dev,test}.tsv  PubMed-like dictionary matches in the six-column consensus layout
  consensus/labels.txt          the classifier labels, one a line
  tagger/                       the consensus test documents as a dictionary tagger run (prediction inputs)
  README.md                     what the files are and their counts

Everything is drawn from templates and lexicons written for this script with one
random.Random(seed), so the output is byte-identical on every run.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from random import Random
from typing import Dict, List, Optional, Sequence, Tuple

HOLDOUT_FRACTION = 0.2
HELDOUT_PROBABILITY = 0.5
NER_SIZES = (("train", 600), ("val", 100), ("test", 100))
NER_TYPES = ("PERSON", "GPE", "ORG", "DATE", "EVENT")
LONG_DOCUMENT_FRACTION = 0.02
CONSENSUS_SIZES = (("train", 800), ("dev", 200), ("test", 200))
CONSENSUS_LABELS = ("che", "dis", "ggp", "org", "out")
CONTEXT_WORDS = 40

# --------------------------------------------------------------------------- shared helpers


def parse_table(text: str) -> List[Tuple[str, ...]]:
    """The non-blank lines of `text`, each split on '|' into stripped fields."""
    return [tuple(field.strip() for field in line.split("|")) for line in text.strip().splitlines() if line.strip()]


def parse_list(text: str) -> List[str]:
    """The non-blank stripped lines of `text`."""
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


class Lexicon:
    """Lexicon entries split once into a training part and a held-out part (about 20 %)."""

    def __init__(self, entries: Sequence, rng: Random) -> None:
        shuffled = list(entries)
        rng.shuffle(shuffled)
        cut = max(1, round(len(shuffled) * HOLDOUT_FRACTION))
        self.heldout = shuffled[:cut]
        self.seen = shuffled[cut:]

    def pick(self, rng: Random, evaluation: bool):
        """One entry: training split uses seen entries only; evaluation splits mix in held-out ones."""
        if evaluation and rng.random() < HELDOUT_PROBABILITY:
            return rng.choice(self.heldout)
        return rng.choice(self.seen)


def capitalize_first(text: str) -> str:
    """`text` with its first character upper-cased."""
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- Finnish NER lexicons

FIRST_NAMES = parse_list("""
Matti
Maria
Juha
Anna
Timo
Liisa
Mikko
Aino
Jukka
Helena
Antti
Sanna
Kari
Johanna
Pekka
Laura
Jari
Elina
Sami
Tiina
Heikki
Riikka
Ville
Katja
Petri
Minna
Tuomas
Päivi
Ilkka
Sari
Janne
Kaisa
Lauri
Emilia
Olli
Noora
Eero
Aleksi
Veera
Onni
Eveliina
Juho
Satu
Harri
Outi
Markku
Pirjo
Risto
Hanna
Tapio
""")

# Surnames whose genitive and allative follow the regular pattern (-nen -> -sen / -selle, vowel -> +n / +lle).
SURNAMES = parse_list("""
Virtanen
Korhonen
Nieminen
Mäkinen
Hämäläinen
Laaksonen
Heikkinen
Koskinen
Järvinen
Lehtonen
Lehtinen
Saarinen
Salminen
Heinonen
Kinnunen
Turunen
Salonen
Jokinen
Karjalainen
Rantanen
Hiltunen
Leinonen
Miettinen
Pesonen
Tuominen
Räsänen
Savolainen
Toivonen
Kettunen
Laitinen
Manninen
Ahonen
Mäkelä
Koskela
Heikkilä
Kallio
Ojala
Hakala
Rantala
Peltola
Jokela
Saarela
Harju
Kivelä
Anttila
Seppälä
Ketola
Lahtela
Vainio
Nurmi
""")

# nominative | genitive | location (in/at) | source (from) | goal (to)
PLACES = parse_table("""
Helsinki | Helsingin | Helsingissä | Helsingistä | Helsinkiin
Espoo | Espoon | Espoossa | Espoosta | Espooseen
Tampere | Tampereen | Tampereella | Tampereelta | Tampereelle
Vantaa | Vantaan | Vantaalla | Vantaalta | Vantaalle
Oulu | Oulun | Oulussa | Oulusta | Ouluun
Turku | Turun | Turussa | Turusta | Turkuun
Jyväskylä | Jyväskylän | Jyväskylässä | Jyväskylästä | Jyväskylään
Lahti | Lahden | Lahdessa | Lahdesta | Lahteen
Kuopio | Kuopion | Kuopiossa | Kuopiosta | Kuopioon
Pori | Porin | Porissa | Porista | Poriin
Joensuu | Joensuun | Joensuussa | Joensuusta | Joensuuhun
Lappeenranta | Lappeenrannan | Lappeenrannassa | Lappeenrannasta | Lappeenrantaan
Hämeenlinna | Hämeenlinnan | Hämeenlinnassa | Hämeenlinnasta | Hämeenlinnaan
Vaasa | Vaasan | Vaasassa | Vaasasta | Vaasaan
Rovaniemi | Rovaniemen | Rovaniemellä | Rovaniemeltä | Rovaniemelle
Seinäjoki | Seinäjoen | Seinäjoella | Seinäjoelta | Seinäjoelle
Kotka | Kotkan | Kotkassa | Kotkasta | Kotkaan
Mikkeli | Mikkelin | Mikkelissä | Mikkelistä | Mikkeliin
Kajaani | Kajaanin | Kajaanissa | Kajaanista | Kajaaniin
Porvoo | Porvoon | Porvoossa | Porvoosta | Porvooseen
Kokkola | Kokkolan | Kokkolassa | Kokkolasta | Kokkolaan
Savonlinna | Savonlinnan | Savonlinnassa | Savonlinnasta | Savonlinnaan
Inari | Inarin | Inarissa | Inarista | Inariin
Kemi | Kemin | Kemissä | Kemistä | Kemiin
Suomi | Suomen | Suomessa | Suomesta | Suomeen
Ruotsi | Ruotsin | Ruotsissa | Ruotsista | Ruotsiin
Norja | Norjan | Norjassa | Norjasta | Norjaan
Viro | Viron | Virossa | Virosta | Viroon
Venäjä | Venäjän | Venäjällä | Venäjältä | Venäjälle
Saksa | Saksan | Saksassa | Saksasta | Saksaan
Ranska | Ranskan | Ranskassa | Ranskasta | Ranskaan
Espanja | Espanjan | Espanjassa | Espanjasta | Espanjaan
Italia | Italian | Italiassa | Italiasta | Italiaan
Kiina | Kiinan | Kiinassa | Kiinasta | Kiinaan
Japani | Japanin | Japanissa | Japanista | Japaniin
Yhdysvallat | Yhdysvaltojen | Yhdysvalloissa | Yhdysvalloista | Yhdysvaltoihin
Kanada | Kanadan | Kanadassa | Kanadasta | Kanadaan
Puola | Puolan | Puolassa | Puolasta | Puolaan
Tanska | Tanskan | Tanskassa | Tanskasta | Tanskaan
Islanti | Islannin | Islannissa | Islannista | Islantiin
Ukraina | Ukrainan | Ukrainassa | Ukrainasta | Ukrainaan
Iso-Britannia | Iso-Britannian | Iso-Britanniassa | Iso-Britanniasta | Iso-Britanniaan
Etelä-Afrikka | Etelä-Afrikan | Etelä-Afrikassa | Etelä-Afrikasta | Etelä-Afrikkaan
Intia | Intian | Intiassa | Intiasta | Intiaan
Brasilia | Brasilian | Brasiliassa | Brasiliasta | Brasiliaan
Australia | Australian | Australiassa | Australiasta | Australiaan
Itävalta | Itävallan | Itävallassa | Itävallasta | Itävaltaan
Kreikka | Kreikan | Kreikassa | Kreikasta | Kreikkaan
New York | New Yorkin | New Yorkissa | New Yorkista | New Yorkiin
Hong Kong | Hong Kongin | Hong Kongissa | Hong Kongista | Hong Kongiin
Los Angeles | Los Angelesin | Los Angelesissa | Los Angelesista | Los Angelesiin
Buenos Aires | Buenos Airesin | Buenos Airesissa | Buenos Airesista | Buenos Airesiin
Tukholma | Tukholman | Tukholmassa | Tukholmasta | Tukholmaan
Tallinna | Tallinnan | Tallinnassa | Tallinnasta | Tallinnaan
Berliini | Berliinin | Berliinissä | Berliinistä | Berliiniin
Pariisi | Pariisin | Pariisissa | Pariisista | Pariisiin
Lontoo | Lontoon | Lontoossa | Lontoosta | Lontooseen
Rooma | Rooman | Roomassa | Roomasta | Roomaan
Oslo | Oslon | Oslossa | Oslosta | Osloon
Kööpenhamina | Kööpenhaminan | Kööpenhaminassa | Kööpenhaminasta | Kööpenhaminaan
Pietari | Pietarin | Pietarissa | Pietarista | Pietariin
Madrid | Madridin | Madridissa | Madridista | Madridiin
Tokio | Tokion | Tokiossa | Tokiosta | Tokioon
Riika | Riian | Riiassa | Riiasta | Riikaan
Varsova | Varsovan | Varsovassa | Varsovasta | Varsovaan
Wien | Wienin | Wienissä | Wienistä | Wieniin
Bryssel | Brysselin | Brysselissä | Brysselistä | Brysseliin
Ateena | Ateenan | Ateenassa | Ateenasta | Ateenaan
""")

# nominative | genitive | location (in/at) | source (from) | goal (to)
ORGANISATIONS = parse_table("""
Nokia | Nokian | Nokialla | Nokialta | Nokialle
Yle | Ylen | Ylellä | Yleltä | Ylelle
Kela | Kelan | Kelassa | Kelasta | Kelaan
Valtioneuvosto | Valtioneuvoston | Valtioneuvostossa | Valtioneuvostosta | Valtioneuvostoon
Helsingin yliopisto | Helsingin yliopiston | Helsingin yliopistossa | Helsingin yliopistosta | Helsingin yliopistoon
Turun yliopisto | Turun yliopiston | Turun yliopistossa | Turun yliopistosta | Turun yliopistoon
Oulun yliopisto | Oulun yliopiston | Oulun yliopistossa | Oulun yliopistosta | Oulun yliopistoon
Tampereen yliopisto | Tampereen yliopiston | Tampereen yliopistossa | Tampereen yliopistosta | Tampereen yliopistoon
Aalto-yliopisto | Aalto-yliopiston | Aalto-yliopistossa | Aalto-yliopistosta | Aalto-yliopistoon
Tilastokeskus | Tilastokeskuksen | Tilastokeskuksessa | Tilastokeskuksesta | Tilastokeskukseen
Suomen Pankki | Suomen Pankin | Suomen Pankissa | Suomen Pankista | Suomen Pankkiin
Finnair | Finnairin | Finnairilla | Finnairilta | Finnairille
Kone | Koneen | Koneella | Koneelta | Koneelle
Stora Enso | Stora Enson | Stora Ensolla | Stora Ensolta | Stora Ensolle
Wärtsilä | Wärtsilän | Wärtsilässä | Wärtsilästä | Wärtsilään
Fortum | Fortumin | Fortumilla | Fortumilta | Fortumille
Kesko | Keskon | Keskossa | Keskosta | Keskoon
Eduskunta | Eduskunnan | Eduskunnassa | Eduskunnasta | Eduskuntaan
Puolustusvoimat | Puolustusvoimien | Puolustusvoimissa | Puolustusvoimista | Puolustusvoimiin
Verohallinto | Verohallinnon | Verohallinnossa | Verohallinnosta | Verohallintoon
Ilmatieteen laitos | Ilmatieteen laitoksen | Ilmatieteen laitoksella | Ilmatieteen laitokselta | Ilmatieteen laitokselle
Terveyden ja hyvinvoinnin laitos | Terveyden ja hyvinvoinnin laitoksen | Terveyden ja hyvinvoinnin laitoksella | Terveyden ja hyvinvoinnin laitokselta | Terveyden ja hyvinvoinnin laitokselle
Posti | Postin | Postissa | Postista | Postiin
VR | VR:n | VR:llä | VR:ltä | VR:lle
Alko | Alkon | Alkossa | Alkosta | Alkoon
Marimekko | Marimekon | Marimekossa | Marimekosta | Marimekkoon
Supercell | Supercellin | Supercellillä | Supercelliltä | Supercellille
Rovio | Rovion | Roviossa | Roviosta | Rovioon
Valio | Valion | Valiossa | Valiosta | Valioon
Fazer | Fazerin | Fazerilla | Fazerilta | Fazerille
Neste | Nesteen | Nesteellä | Nesteeltä | Nesteelle
UPM | UPM:n | UPM:llä | UPM:ltä | UPM:lle
Sanoma | Sanoman | Sanomalla | Sanomalta | Sanomalle
Helsingin Sanomat | Helsingin Sanomien | Helsingin Sanomissa | Helsingin Sanomista | Helsingin Sanomiin
Euroopan komissio | Euroopan komission | Euroopan komissiossa | Euroopan komissiosta | Euroopan komissioon
Suomen Yrittäjät | Suomen Yrittäjien | Suomen Yrittäjissä | Suomen Yrittäjistä | Suomen Yrittäjiin
SAK | SAK:n | SAK:ssa | SAK:sta | SAK:hon
Elinkeinoelämän keskusliitto | Elinkeinoelämän keskusliiton | Elinkeinoelämän keskusliitossa | Elinkeinoelämän keskusliitosta | Elinkeinoelämän keskusliittoon
HUS | HUS:n | HUS:ssa | HUS:sta | HUS:iin
Poliisihallitus | Poliisihallituksen | Poliisihallituksessa | Poliisihallituksesta | Poliisihallitukseen
Metsähallitus | Metsähallituksen | Metsähallituksessa | Metsähallituksesta | Metsähallitukseen
Traficom | Traficomin | Traficomissa | Traficomista | Traficomiin
Orion | Orionin | Orionilla | Orionilta | Orionille
Elisa | Elisan | Elisalla | Elisalta | Elisalle
Telia | Telian | Telialla | Telialta | Telialle
HJK | HJK:n | HJK:ssa | HJK:sta | HJK:hon
Kärpät | Kärppien | Kärpissä | Kärpistä | Kärppiin
""")

# nominative | genitive | location (at) | goal (to)
EVENTS = parse_table("""
Euroviisut | Euroviisujen | Euroviisuissa | Euroviisuihin
Ruisrock | Ruisrockin | Ruisrockissa | Ruisrockiin
Flow Festival | Flow Festivalin | Flow Festivalilla | Flow Festivalille
Slush | Slushin | Slushissa | Slushiin
Ilosaarirock | Ilosaarirockin | Ilosaarirockissa | Ilosaarirockiin
Provinssi | Provinssin | Provinssissa | Provinssiin
Tuska | Tuskan | Tuskassa | Tuskaan
Tangomarkkinat | Tangomarkkinoiden | Tangomarkkinoilla | Tangomarkkinoille
Kalevan kisat | Kalevan kisojen | Kalevan kisoissa | Kalevan kisoihin
Tour de France | Tour de Francen | Tour de Francessa | Tour de Franceen
Finlandia-hiihto | Finlandia-hiihdon | Finlandia-hiihdossa | Finlandia-hiihtoon
Savonlinnan oopperajuhlat | Savonlinnan oopperajuhlien | Savonlinnan oopperajuhlilla | Savonlinnan oopperajuhlille
Sodankylän elokuvajuhlat | Sodankylän elokuvajuhlien | Sodankylän elokuvajuhlilla | Sodankylän elokuvajuhlille
Helsingin juhlaviikot | Helsingin juhlaviikkojen | Helsingin juhlaviikoilla | Helsingin juhlaviikoille
Lahden MM-hiihdot | Lahden MM-hiihtojen | Lahden MM-hiihdoissa | Lahden MM-hiihtoihin
Kaustisen kansanmusiikkijuhlat | Kaustisen kansanmusiikkijuhlien | Kaustisen kansanmusiikkijuhlilla | Kaustisen kansanmusiikkijuhlille
Nordic Business Forum | Nordic Business Forumin | Nordic Business Forumissa | Nordic Business Forumiin
Qstock | Qstockin | Qstockissa | Qstockiin
Weekend Festival | Weekend Festivalin | Weekend Festivalilla | Weekend Festivalille
Blockfest | Blockfestin | Blockfestissä | Blockfestiin
Linnan juhlat | Linnan juhlien | Linnan juhlissa | Linnan juhliin
Asuntomessut | Asuntomessujen | Asuntomessuilla | Asuntomessuille
Matkamessut | Matkamessujen | Matkamessuilla | Matkamessuille
Urheilugaala | Urheilugaalan | Urheilugaalassa | Urheilugaalaan
Pori Jazz | Pori Jazzin | Pori Jazzeilla | Pori Jazzeille
""")

MONTHS_PARTITIVE = parse_list("""
tammikuuta
helmikuuta
maaliskuuta
huhtikuuta
toukokuuta
kesäkuuta
heinäkuuta
elokuuta
syyskuuta
lokakuuta
marraskuuta
joulukuuta
""")
MONTHS_INESSIVE = [month[:-2] + "ssa" for month in MONTHS_PARTITIVE]
WEEKDAYS_ESSIVE = parse_list("""
maanantaina
tiistaina
keskiviikkona
torstaina
perjantaina
lauantaina
sunnuntaina
""")
RELATIVE_DATES = parse_list("""
viime vuonna
ensi viikolla
viime syksynä
tänä keväänä
ensi kesänä
viime kuussa
""")

PLACE_CASES = ("nom", "gen", "loc", "from", "to")
EVENT_CASES = ("nom", "gen", "loc", "to")
PERSON_CASES = ("nom", "gen", "all")

# Slots: {PER.case} full name, {SUR.case} surname, {GPE.case}, {ORG.case}, {EVT.case}, {DATE}, {YEAR}, {NUM}.
NER_TEMPLATES = parse_list("""
{PER.nom} vieraili {GPE.loc} {DATE} .
{ORG.nom} kertoi {DATE} , että se avaa uuden toimipisteen {GPE.loc} .
{PER.nom} aloittaa {ORG.gen} toimitusjohtajana {DATE} .
{GPE.gen} asukkaat äänestävät uudesta ratikkalinjasta {DATE} .
{PER.nom} muutti {GPE.from} {GPE.to} vuonna {YEAR} .
Pääministeri {PER.nom} tapasi {PER.gen} {GPE.loc} .
{EVT.nom} järjestetään {DATE} {GPE.loc} .
{ORG.gen} mukaan työttömyys kasvoi {GPE.loc} {DATE} .
{PER.gen} mukaan neuvottelut jatkuvat {DATE} .
{PER.nom} työskentelee tutkijana {ORG.loc} .
Yhtiö siirtää pääkonttorinsa {GPE.from} {GPE.to} .
{ORG.nom} ja {ORG.nom} allekirjoittivat yhteistyösopimuksen {DATE} .
Noin {NUM} ihmistä osallistui {EVT.gen} avajaisiin {DATE} .
{PER.nom} esiintyy {EVT.loc} {DATE} .
Lento {GPE.from} {GPE.to} peruttiin {DATE} myrskyn vuoksi .
{ORG.nom} ilmoitti vähentävänsä {NUM} työpaikkaa {GPE.loc} .
Haastattelussa {PER.nom} kertoi viihtyvänsä {GPE.loc} erinomaisesti .
{SUR.nom} sanoi , ettei {ORG.nom} kommentoi asiaa .
Kokous pidetään {ORG.gen} tiloissa {DATE} .
{PER.nom} valittiin {ORG.gen} hallituksen puheenjohtajaksi .
{GPE.loc} satoi {DATE} ennätysmäärä lunta .
Tutkimuksen tekivät {ORG.gen} ja {ORG.gen} tutkijat yhdessä .
{PER.nom} voitti kultaa {EVT.loc} .
Kävijöitä oli {EVT.loc} enemmän kuin koskaan aiemmin .
{PER.nom} syntyi {GPE.loc} {DATE} .
{ORG.nom} julkaisi tuloksensa {DATE} , ja osake nousi {NUM} prosenttia .
Ministeri {PER.nom} matkustaa {DATE} {GPE.to} .
{GPE.nom} ja {GPE.nom} sopivat tiiviimmästä yhteistyöstä .
{GPE.gen} hallitus tiedotti {DATE} uusista rajoituksista .
{PER.nom} on toiminut {ORG.gen} tiedottajana vuodesta {YEAR} .
Uutisen kertoi ensimmäisenä {ORG.nom} .
{PER.nom} ja {PER.nom} menivät naimisiin {GPE.loc} {DATE} .
{ORG.loc} työskentelee yli {NUM} henkilöä .
{PER.nom} kritisoi {ORG.gen} päätöstä {DATE} .
Poliisi tiedotti , että {GPE.loc} sattui liikenneonnettomuus {DATE} .
{PER.all} myönnettiin palkinto {EVT.loc} .
Kysyimme asiaa {PER.all} , joka johtaa {ORG.gen} viestintää .
{GPE.from} kotoisin oleva {PER.nom} muutti {GPE.to} opiskelemaan .
{ORG.nom} on {GPE.gen} suurin yksityinen työnantaja .
Lipunmyynti {EVT.to} alkaa {DATE} .
{SUR.gen} mielestä {ORG.gen} pitäisi panostaa enemmän tutkimukseen .
{ORG.nom} kertoi {DATE} , että se investoi {NUM} miljoonaa euroa uuteen tehtaaseen {GPE.loc} , ja hankkeen arvioidaan työllistävän satoja ihmisiä koko alueella seuraavien vuosien aikana .
{PER.nom} , joka on työskennellyt pitkään {ORG.loc} , kertoi haastattelussa {DATE} , että hän aikoo muuttaa perheensä kanssa {GPE.to} , koska siellä on paremmat mahdollisuudet sekä työhön että vapaa-aikaan .
{EVT.nom} keräsi {GPE.to} yhteensä {NUM} kävijää .
{ORG.gen} tiedotteen mukaan {PER.nom} jää eläkkeelle {DATE} .
Professori {PER.nom} {ORG.gen} tutkimusryhmästä esitteli tuloksia {EVT.loc} .
{DATE} {GPE.loc} mitattiin vuoden korkein lämpötila .
Juna {GPE.from} saapui {GPE.to} lähes tunnin myöhässä .
{PER.nom} palaa {GPE.to} {EVT.gen} jälkeen .
Hinnat ovat nousseet selvästi viime aikoina .
Tutkijat suosittelevat liikuntaa kaikille ikäryhmille .
Kokous päättyi ilman yhteistä sopimusta .
Kaupan alan työntekijät vaativat parempia palkkoja .
Lumi sulaa nopeasti , kun aurinko paistaa .
Moni lukija kysyi , miksi päätöstä ei perusteltu tarkemmin .
Asiantuntijoiden mukaan sähkön hinta pysyy korkeana .
Järjestäjät olivat tyytyväisiä tapahtuman sujumiseen .
Kiitos kaikille osallistujille !
Uusi laki herätti vilkasta keskustelua sekä kannattajien että vastustajien keskuudessa , ja moni kansalainen otti kantaa asiaan sosiaalisessa mediassa .
""")

# Optional tails that replace a sentence's final full stop to vary lengths.
NER_TAILS = parse_list("""
, mikä yllätti monet .
, kertoo {ORG.nom} .
, ja asiasta keskustellaan vielä .
, vaikka sää oli huono .
, kertoi {PER.nom} toimittajille .
, ja sama käytäntö on jo käytössä {GPE.loc} .
, eikä kukaan osannut odottaa sitä .
, ja seuraava tilaisuus on {DATE} .
, mutta lopullinen päätös tehdään vasta myöhemmin , kun kaikki selvitykset ovat valmiita ja rahoitus on varmistunut .
""")

SLOT = re.compile(r"^\{(\w+)(?:\.(\w+))?\}$")
SLOT_TYPES = {"PER": "PERSON", "SUR": "PERSON", "GPE": "GPE", "ORG": "ORG", "EVT": "EVENT", "DATE": "DATE", "YEAR": "DATE"}


@dataclass
class NerLexicons:
    """The Finnish lexicons, each split into seen and held-out entries."""

    first_names: Lexicon
    surnames: Lexicon
    places: Lexicon
    organisations: Lexicon
    events: Lexicon


def make_ner_lexicons(rng: Random) -> NerLexicons:
    """Split every Finnish lexicon into seen and held-out entries."""
    return NerLexicons(
        Lexicon(FIRST_NAMES, rng),
        Lexicon(SURNAMES, rng),
        Lexicon(PLACES, rng),
        Lexicon(ORGANISATIONS, rng),
        Lexicon(EVENTS, rng),
    )


def surname_form(surname: str, case: str) -> str:
    """A regular Finnish surname in the nominative, genitive or allative."""
    if case == "nom":
        return surname
    stem = surname[:-3] + "se" if surname.endswith("nen") else surname
    return stem + ("n" if case == "gen" else "lle")


def random_date(rng: Random) -> str:
    """A Finnish date expression (one or more words) usable as a time adverbial."""
    kind = rng.randrange(6)
    day, month, year = rng.randint(1, 28), rng.randrange(12), rng.randint(1995, 2025)
    if kind == 0:
        return f"{day}. {MONTHS_PARTITIVE[month]} {year}"
    if kind == 1:
        return f"{day}. {MONTHS_PARTITIVE[month]}"
    if kind == 2:
        return rng.choice(WEEKDAYS_ESSIVE)
    if kind == 3:
        return f"{MONTHS_INESSIVE[month]} {year}" if rng.random() < 0.5 else MONTHS_INESSIVE[month]
    if kind == 4:
        return rng.choice(RELATIVE_DATES)
    return f"{rng.randint(196, 201)}0-luvulla"


def fill_ner_slot(kind: str, case: Optional[str], lex: NerLexicons, rng: Random, evaluation: bool) -> str:
    """The words that fill one template slot."""
    if kind == "PER":
        first = lex.first_names.pick(rng, evaluation)
        return f"{first} {surname_form(lex.surnames.pick(rng, evaluation), case or 'nom')}"
    if kind == "SUR":
        return surname_form(lex.surnames.pick(rng, evaluation), case or "nom")
    if kind in ("GPE", "ORG"):
        lexicon = lex.places if kind == "GPE" else lex.organisations
        return lexicon.pick(rng, evaluation)[PLACE_CASES.index(case or "nom")]
    if kind == "EVT":
        return lex.events.pick(rng, evaluation)[EVENT_CASES.index(case or "nom")]
    if kind == "DATE":
        return random_date(rng)
    if kind == "YEAR":
        return str(rng.randint(1990, 2024))
    if kind == "NUM":
        return str(rng.choice([rng.randint(2, 99), rng.randint(100, 9000)]))
    raise ValueError(f"unknown slot {kind}")


def realize_ner_template(template: str, lex: NerLexicons, rng: Random, evaluation: bool) -> Tuple[List[str], List[str]]:
    """Tokens and IOB2 tags of one filled template."""
    tokens: List[str] = []
    tags: List[str] = []
    for piece in template.split():
        match = SLOT.match(piece)
        if not match:
            tokens.append(piece)
            tags.append("O")
            continue
        words = fill_ner_slot(match.group(1), match.group(2), lex, rng, evaluation).split()
        entity = SLOT_TYPES.get(match.group(1))
        tokens.extend(words)
        tags.extend(["O"] * len(words) if entity is None else [f"B-{entity}"] + [f"I-{entity}"] * (len(words) - 1))
    tokens[0] = capitalize_first(tokens[0])
    return tokens, tags


def ner_sentence(lex: NerLexicons, rng: Random, evaluation: bool) -> Tuple[List[str], List[str]]:
    """One sentence: a random template, sometimes with a tail clause replacing its final full stop."""
    template = rng.choice(NER_TEMPLATES)
    if template.endswith(" .") and rng.random() < 0.3:
        template = template[:-2] + " " + rng.choice(NER_TAILS)
    return realize_ner_template(template, lex, rng, evaluation)


def ner_example(lex: NerLexicons, rng: Random, evaluation: bool, min_words: int) -> Tuple[List[str], List[str]]:
    """Sentences joined until the example has at least `min_words` tokens (always at least one sentence)."""
    tokens, tags = ner_sentence(lex, rng, evaluation)
    while len(tokens) < min_words:
        more_tokens, more_tags = ner_sentence(lex, rng, evaluation)
        tokens, tags = tokens + more_tokens, tags + more_tags
    return tokens, tags


def ner_split(size: int, lex: NerLexicons, rng: Random, evaluation: bool) -> List[Tuple[List[str], List[str]]]:
    """`size` examples: about 2 % long documents of 150-300 words, 10 % two-sentence texts, the rest sentences."""
    long_count = max(1, round(size * LONG_DOCUMENT_FRACTION))
    examples = [ner_example(lex, rng, evaluation, rng.randint(150, 260)) for _ in range(long_count)]
    for _ in range(size - long_count):
        min_words = rng.randint(12, 30) if rng.random() < 0.1 else 0
        examples.append(ner_example(lex, rng, evaluation, min_words))
    rng.shuffle(examples)
    return examples


def ner_csv_text(examples: Sequence[Tuple[List[str], List[str]]]) -> str:
    """The CSV text, as pandas DataFrame.to_csv(index=False) writes list cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["tokens", "tags"])
    for tokens, tags in examples:
        writer.writerow([str(list(tokens)), str(list(tags))])
    return buffer.getvalue()


def entity_counts(examples: Sequence[Tuple[List[str], List[str]]]) -> Counter:
    """Number of entities (B- tags) per type."""
    return Counter(tag[2:] for _, tags in examples for tag in tags if tag.startswith("B-"))


# --------------------------------------------------------------------------- consensus lexicons

CHEMICALS = parse_list("""
cisplatin
dopamine
glucose
doxorubicin
metformin
ethanol
nitric oxide
cholesterol
serotonin
paclitaxel
tamoxifen
lithium
caffeine
nicotine
morphine
haloperidol
ascorbic acid
hydrogen peroxide
cadmium
arsenic
curcumin
resveratrol
valproic acid
dexamethasone
cyclophosphamide
5-fluorouracil
bisphenol A
acetylcholine
glutamate
histamine
ATP
calcium
zinc
streptozotocin
rapamycin
cocaine
melatonin
estradiol
testosterone
cortisol
ketamine
lidocaine
aspirin
ibuprofen
warfarin
heparin
vitamin D
folic acid
sodium chloride
quercetin
""")

DISEASES = parse_list("""
Parkinson's disease
breast cancer
Alzheimer's disease
type 2 diabetes
hypertension
asthma
rheumatoid arthritis
multiple sclerosis
hepatocellular carcinoma
colorectal cancer
schizophrenia
epilepsy
obesity
atherosclerosis
sepsis
tuberculosis
malaria
chronic kidney disease
myocardial infarction
heart failure
major depression
osteoporosis
psoriasis
Crohn's disease
acute myeloid leukemia
glioblastoma
cystic fibrosis
Huntington's disease
prostate cancer
lung cancer
ulcerative colitis
liver fibrosis
pneumonia
stroke
migraine
systemic lupus erythematosus
neuropathic pain
gastric cancer
ovarian cancer
amyotrophic lateral sclerosis
""")

GENES = parse_list("""
TP53
BRCA1
BRCA2
insulin receptor
EGFR
tumor necrosis factor alpha
interleukin-6
VEGF
AKT1
mTOR
caspase-3
Bcl-2
NF-kappaB
cyclin D1
HER2
KRAS
PTEN
STAT3
MMP-9
COX-2
estrogen receptor alpha
leptin
alpha-synuclein
amyloid precursor protein
CFTR
huntingtin
IL-1beta
TGF-beta1
p21
c-Myc
Nrf2
SIRT1
AMPK
PPARgamma
ERK1/2
JAK2
CD4
Notch1
beta-catenin
superoxide dismutase
""")

ORGANISMS = parse_list("""
Escherichia coli
Staphylococcus aureus
Saccharomyces cerevisiae
Drosophila melanogaster
Caenorhabditis elegans
Arabidopsis thaliana
Mycobacterium tuberculosis
Plasmodium falciparum
HIV-1
hepatitis B virus
influenza A virus
Pseudomonas aeruginosa
Candida albicans
Helicobacter pylori
Bacillus subtilis
Listeria monocytogenes
Hantaan virus
Klebsiella pneumoniae
Streptococcus pneumoniae
Toxoplasma gondii
mice
rats
zebrafish
rhesus monkeys
pigs
humans
""")

# Dictionary matches that are not entities of the four types.
GENERIC_PHRASES = parse_list("""
the study group
the control group
previous studies
the membrane
protein synthesis
these findings
cell viability
gene expression
body weight
the present study
clinical outcome
blood pressure
the cervix uteri
such phenomena
a significant minority
developmental theory
deleterious effect
finger stimulation
""")

COUNTRIES = parse_list("""
Spain
Japan
China
Brazil
Finland
Canada
Italy
Sweden
Korea
Australia
""")

DURATIONS = ("days", "weeks", "months", "years")

# Slots: {che} {dis} {ggp} {org} from lexicons, {label=literal} fixed matches,
# {pct} {dec} {dur} {np} {Np} {country} out matches, {int} a plain number (no match).
TITLE_TEMPLATES = parse_list("""
{ggp} regulates {che}-induced apoptosis in {org}.
Effects of {che} on {ggp} expression in {org} with {dis}.
Association of {ggp} polymorphisms with {dis} risk in {country}.
{che} attenuates {dis} through inhibition of {ggp} signaling.
The role of {ggp} in {org}: a review.
Long-term {che} treatment and body weight in {org}.
Clinical features of {dis} in {country}.
{che} exposure and the {out=impact} of {che} in {org}.
Quantitative analysis of {che} metabolism.
Prevalence of {dis} over {dur}.
Outcomes after {dur} of {che} therapy in {country}.
""")

BODY_TEMPLATES = parse_list("""
{dis} is a major cause of morbidity and mortality worldwide.
{dis} affects approximately {pct} of adults in {country}.
Previous studies have shown that {ggp} plays a key role in the pathogenesis of {dis}.
In this study, we investigated whether {che} modulates {ggp} activity in {org}.
Animals were treated with {che} ({int} mg/kg) for {dur}.
Expression of {ggp} was measured by western blot and quantitative PCR.
{che} significantly reduced {ggp} levels compared with {np}.
The odds ratio for {dis} was {dec} (95% CI, {dec} to {dec}).
{out=Our results} suggest that {ggp} may be a therapeutic target in {org}.
These data {out=set} the stage for preclinical studies of {che} in {org}.
Mean arterial pressure ({out=MAP}) and heart rate were recorded in {org}.
Chronic exposure to {che=lead} is associated with cognitive decline in {org}.
Blood {che=lead} concentrations were higher in {np} than in healthy volunteers.
Loss of {ggp} may {out=lead} to {dis} in susceptible individuals.
The {out=impact} of {che} on quality of life was assessed after {dur}.
A total of {int} patients were enrolled in {country} between 2005 and 2012.
Range of motion ({out=ROM}) improved in {pct} of patients after {dur}.
Activated clotting time ({out=ACT}) was monitored during surgery.
Activities of superoxide dismutase and catalase ({ggp=CAT}) were increased by {che}.
A {out=CAT} scan revealed no abnormalities in {pct} of cases.
{ggp} knockout {org} were resistant to {che}-induced toxicity.
Treatment with {che} increased phosphorylation of {ggp} in a dose-dependent manner.
{Np} was determined after {dur} of treatment with {che}.
Samples were collected from {int} {org} in {country}.
{Np} showed no significant change after {dur}.
This effect {out=was} abolished by pretreatment with {che}.
In conclusion, {che} protects against {dis} by activating {ggp}.
The prevalence of {dis} in {country} increased from {pct} to {pct} over {dur}.
Genome sequencing of {org} revealed a novel homolog of {ggp}.
Infection with {org} was associated with severe disease in {pct} of cases.
Serum {che} and {che} levels were correlated with disease severity ({out=r} = {dec}).
The recent {out=act} of parliament in {country} restricted the sale of {che}.
Response rates were {pct} and {pct} in the two arms, respectively.
Co-administration of {che} and {che} reduced mortality in {org} by {pct}.
Patients were followed for a median of {dur}, and {pct} developed {dis}.
The sensitivity and specificity were {pct} and {pct}, respectively.
Notably, {np} differed between the groups ({out=P} < 0.05).
{che} was administered orally to {org} for {dur}.
Strains of {org} were isolated from {np} in {country}.
Mortality was {pct} in the {che} group and {pct} in the placebo group.
{org} were fed a diet containing {che} for {dur}.
We {out=set} out to compare {che} with {che} in {org}.
Participants from {country} and {country} were included in the analysis.
{Np} remained stable during {dur} of follow-up.
Plasma {che} peaked after {dur} and declined by {pct} within a week.
Patients with {dis} had higher {che} levels than {np}.
{dis} was diagnosed in {pct} of participants during follow-up.
""")

FILLER_SENTENCES = parse_list("""
Statistical analysis was performed using standard software.
Further studies are needed to confirm these observations.
All procedures were approved by the local ethics committee.
The mechanism remains poorly understood.
Data are presented as mean and standard deviation.
No serious adverse events were reported.
Written informed consent was obtained from all participants.
The experiments were repeated three times with similar results.
Baseline characteristics did not differ between the groups.
Several limitations of this work should be acknowledged.
Differences between groups were tested with two-sided tests.
The underlying pathways were examined in detail using complementary methods.
Here we report a retrospective analysis of a prospectively collected cohort.
Outcomes were assessed by investigators blinded to the treatment allocation.
These observations extend earlier work on related compounds.
""")

CONSENSUS_SLOT = re.compile(r"\{(\w+)(?:=([^}]+))?\}")
OUT_SLOTS = ("pct", "dec", "dur", "np", "Np", "country")


@dataclass
class BioLexicons:
    """The biomedical lexicons, each split into seen and held-out entries."""

    che: Lexicon
    dis: Lexicon
    ggp: Lexicon
    org: Lexicon


@dataclass
class Document:
    """A synthetic abstract and its dictionary matches as (start, end, label) character spans."""

    doc_id: str
    text: str
    matches: List[Tuple[int, int, str]]


def make_bio_lexicons(rng: Random) -> BioLexicons:
    """Split every biomedical lexicon into seen and held-out entries."""
    return BioLexicons(Lexicon(CHEMICALS, rng), Lexicon(DISEASES, rng), Lexicon(GENES, rng), Lexicon(ORGANISMS, rng))


def match_count(template: str) -> int:
    """Number of dictionary matches a template produces."""
    return sum(1 for match in CONSENSUS_SLOT.finditer(template) if match.group(1) != "int")


def random_out_value(kind: str, rng: Random) -> str:
    """The text of an out-of-type match: a number, a duration, a generic phrase or a country."""
    if kind == "pct":
        return f"{rng.randint(2, 95)}%" if rng.random() < 0.6 else f"{rng.randint(2, 95)}.{rng.randint(0, 9)}%"
    if kind == "dec":
        return f"0.{rng.randint(10, 99)}"
    if kind == "dur":
        count = rng.randint(2, 24)
        return f"{count} {rng.choice(DURATIONS)}" if rng.random() < 0.85 else "1 year"
    if kind in ("np", "Np"):
        phrase = rng.choice(GENERIC_PHRASES)
        return capitalize_first(phrase) if kind == "Np" else phrase
    return rng.choice(COUNTRIES)


def fill_bio_slot(
    kind: str, literal: Optional[str], topic: Dict[str, str], lex: BioLexicons, rng: Random, evaluation: bool, avoid: Sequence[str]
) -> Tuple[str, Optional[str]]:
    """The text and the label (None: not a match) of one consensus template slot; lexicon picks avoid `avoid`."""
    if literal is not None:
        return literal, kind
    if kind == "int":
        return str(rng.randint(8, 400)), None
    if kind in OUT_SLOTS:
        return random_out_value(kind, rng), "out"
    value = topic[kind] if rng.random() < 0.6 else getattr(lex, kind).pick(rng, evaluation)
    while value in avoid:
        value = getattr(lex, kind).pick(rng, evaluation)
    return value, kind


def realize_bio_template(
    template: str, topic: Dict[str, str], lex: BioLexicons, rng: Random, evaluation: bool
) -> Tuple[str, List[Tuple[int, int, str]]]:
    """A filled sentence and its matches (character spans relative to the sentence)."""
    parts: List[str] = []
    matches: List[Tuple[int, int, str]] = []
    position = 0
    for slot in CONSENSUS_SLOT.finditer(template):
        parts.append(template[position:slot.start()])
        value, label = fill_bio_slot(slot.group(1), slot.group(2), topic, lex, rng, evaluation, parts)
        if slot.start() == 0 and value.split()[0].isalpha():
            value = capitalize_first(value)
        offset = sum(len(part) for part in parts)
        parts.append(value)
        if label is not None:
            matches.append((offset, offset + len(value), label))
        position = slot.end()
    parts.append(template[position:])
    return "".join(parts), matches


def choose_sentence(templates: Sequence[str], room: int, used: set, rng: Random) -> Optional[str]:
    """A random unused template with at most `room` matches (None when there is none)."""
    candidates = [t for t in templates if t not in used and 0 < match_count(t) <= room]
    return rng.choice(candidates) if candidates else None


def document_templates(target: int, rng: Random) -> List[str]:
    """A title and body sentences that together hold exactly `target` matches, with a filler or two."""
    chosen = [choose_sentence(TITLE_TEMPLATES, target, set(), rng)]
    room = target - match_count(chosen[0])
    while room > 0:
        sentence = choose_sentence(BODY_TEMPLATES, room, set(chosen), rng)
        if sentence is None:
            break
        chosen.append(sentence)
        room -= match_count(sentence)
        if rng.random() < 0.5:
            chosen.append(rng.choice(FILLER_SENTENCES))
    return chosen


def make_document(doc_id: str, target: int, lex: BioLexicons, rng: Random, evaluation: bool) -> Document:
    """One abstract with (at most) `target` dictionary matches."""
    topic = {kind: getattr(lex, kind).pick(rng, evaluation) for kind in ("che", "dis", "ggp", "org")}
    text = ""
    matches: List[Tuple[int, int, str]] = []
    for template in document_templates(target, rng):
        sentence, spans = realize_bio_template(template, topic, lex, rng, evaluation)
        offset = len(text) + (1 if text else 0)
        text = f"{text} {sentence}" if text else sentence
        matches.extend((start + offset, end + offset, label) for start, end, label in spans)
    return Document(doc_id, text, matches)


def left_context(text: str, start: int) -> str:
    """Up to CONTEXT_WORDS words before `start`, with 'DOCSTART ' when the document start is inside."""
    before = text[:start]
    words = list(re.finditer(r"\S+", before))
    if len(words) <= CONTEXT_WORDS:
        return "DOCSTART " + before
    return before[words[-CONTEXT_WORDS].start():]


def right_context(text: str, end: int) -> str:
    """Up to CONTEXT_WORDS words after `end`, with ' DOCEND' when the document end is inside."""
    after = text[end:]
    words = list(re.finditer(r"\S+", after))
    if len(words) <= CONTEXT_WORDS:
        return after + " DOCEND"
    return after[:words[CONTEXT_WORDS - 1].end()]


def document_rows(document: Document) -> List[Tuple[str, str, str, str, str, str]]:
    """The six-column rows of every match of a document."""
    rows = []
    for number, (start, end, label) in enumerate(document.matches, start=1):
        mention = document.text[start:end]
        left, right = left_context(document.text, start), right_context(document.text, end)
        rows.append((document.doc_id, f"T{number}", label, left, mention, right))
    return rows


def new_doc_id(rng: Random, taken: set) -> str:
    """A PubMed-like numeric id not yet in `taken` (which it joins)."""
    while True:
        doc_id = str(rng.randint(10_000_000, 34_999_999))
        if doc_id not in taken:
            taken.add(doc_id)
            return doc_id


def consensus_split(size: int, lex: BioLexicons, rng: Random, evaluation: bool, taken: set,
                    documents: Optional[List[Document]] = None) -> List[Tuple[str, ...]]:
    """Rows of whole documents, `size` in all, shuffled (the documents appended to `documents` when given)."""
    rows: List[Tuple[str, ...]] = []
    while len(rows) < size:
        target = min(rng.randint(6, 16), size - len(rows))
        document = make_document(new_doc_id(rng, taken), target, lex, rng, evaluation)
        rows.extend(document_rows(document))
        if documents is not None:
            documents.append(document)
    rng.shuffle(rows)
    return rows


# --------------------------------------------------------------------------- the test documents as a tagger run

TAGGER_TYPES = {"che": -1, "dis": -26, "ggp": 9606, "org": -2}
TAGGER_ORDER = ("ggp", "che", "org", "dis")  # the type a match labelled `out` gets, by its position
IDENTIFIER_PREFIXES = {"che": "CIDm", "dis": "DOID:", "ggp": "ENSP"}
ORGANISM_TAXON = 100_000  # synthetic taxonomy ids from here; each organism name has a species and a genus entry


def tagger_type(label: str, position: int) -> str:
    """The dictionary type of a match: its label, or for `out` one of the four by position."""
    return label if label != "out" else TAGGER_ORDER[position % len(TAGGER_ORDER)]


def tagger_entities(documents: Sequence[Document]) -> Dict[Tuple[str, str], List[int]]:
    """(type, name) -> the serials of its entities (organisms: species first, then genus), in first-seen order."""
    entities: Dict[Tuple[str, str], List[int]] = {}
    serial = 0
    for document in documents:
        for position, (start, end, label) in enumerate(document.matches):
            key = (tagger_type(label, position), document.text[start:end])
            if key not in entities:
                count = 2 if key[0] == "org" else 1
                entities[key] = list(range(serial + 1, serial + 1 + count))
                serial += count
    return entities


def entity_rows(entities: Dict[Tuple[str, str], List[int]]) -> Tuple[List[str], List[str]]:
    """The all_entities.tsv lines and the scientific_names_and_ranks.tsv lines."""
    rows, ranks = [], []
    for (kind, name), serials in entities.items():
        for rank, serial in zip(("species", "genus"), serials):
            identifier = str(ORGANISM_TAXON + serial) if kind == "org" else f"{IDENTIFIER_PREFIXES[kind]}{serial}"
            rows.append(f"{serial}\t{TAGGER_TYPES[kind]}\t{identifier}\n")
            if kind == "org":
                ranks.append(f"{identifier}\t{name if rank == 'species' else name.split()[0]}\t{rank}\n")
    return rows, ranks


def tagger_document(document: Document, year: int) -> str:
    """A tagger input line: PMID key, authors, journal, year, title (the first sentence), abstract."""
    cut = document.text.find(". ")
    title, abstract = (document.text, "") if cut < 0 else (document.text[:cut + 1], document.text[cut + 2:])
    return f"PMID:{document.doc_id}\tDemo A\tJ Demo\t{year}\t{title}\t{abstract}\n"


def tagger_matches(document: Document, entities: Dict[Tuple[str, str], List[int]]) -> List[str]:
    """The tagger's --out-matches lines of a document (document, paragraph, sentence, start, stop, text, type,
    serial): one a serial of the matched name, the stop inclusive."""
    lines = []
    for position, (start, end, label) in enumerate(document.matches):
        kind = tagger_type(label, position)
        name = document.text[start:end]
        for serial in entities[(kind, name)]:
            lines.append(f"{document.doc_id}\t1\t1\t{start}\t{end - 1}\t{name}\t{TAGGER_TYPES[kind]}\t{serial}\n")
    return lines


def write_tagger_run(out: Path, documents: Sequence[Document]) -> None:
    """The test documents as the inputs of python -m bert_tf.classifier.contexts (tagger/)."""
    entities = tagger_entities(documents)
    rows, ranks = entity_rows(entities)
    lines = [tagger_document(d, 2000 + i % 25) for i, d in enumerate(documents)]
    lines.append("PMID:1\tDemo A\tJ Demo\t2000\tAn excluded document.\t\n")
    write_text(out / "tagger" / "documents.tsv", "".join(lines))
    write_text(out / "tagger" / "all_matches.tsv", "".join(m for d in documents for m in tagger_matches(d, entities)))
    write_text(out / "tagger" / "all_entities.tsv", "".join(rows))
    write_text(out / "tagger" / "excluded_documents.txt", "1\n")
    write_text(out / "tagger" / "scientific_names_and_ranks.tsv", "".join(ranks))


def tsv_text(rows: Sequence[Sequence[str]]) -> str:
    """Tab-separated rows without quoting, '\\n' line ends."""
    for row in rows:
        if any("\t" in field or "\n" in field for field in row):
            raise ValueError(f"tab or newline inside a field: {row!r}")
    return "".join("\t".join(row) + "\n" for row in rows)


# --------------------------------------------------------------------------- output


def count_lines(counts: Counter, keys: Sequence[str]) -> str:
    """'key n, key n, ...' in the order of `keys`."""
    return ", ".join(f"{key} {counts[key]}" for key in keys)


def readme_text(ner: Dict[str, list], consensus: Dict[str, list], seed: int) -> str:
    """The README describing the generated files and their counts."""
    lines = [
        "# Demo data (synthetic)",
        "",
        "Small synthetic data sets for trying run_ner.py and run_classifier.py end to end.",
        "Every sentence, abstract, name and id here was generated from templates and lexicons;",
        "nothing is real text. Regenerate (byte-identical) with",
        "",
        f"    python scripts/make_demo_data.py --out data/demo --seed {seed}",
        "",
        "## ner/ - Finnish NER (train.csv, val.csv, test.csv)",
        "",
        "CSV with header `tokens,tags`; each cell a Python list literal; IOB2 tags.",
        "About 2 % of the examples are multi-sentence documents of 150-300 words.",
        "About 20 % of each name lexicon is held out of train and used only in val/test.",
        "",
    ]
    for split, examples in ner.items():
        words = sum(len(tokens) for tokens, _ in examples)
        entities = count_lines(entity_counts(examples), NER_TYPES)
        lines.append(f"- {split}: {len(examples)} examples, {words} tokens; entities: {entities}")
    lines += [
        "",
        "## consensus/ - entity-type classification of dictionary matches (train.tsv, dev.tsv, test.tsv, labels.txt)",
        "",
        "Six tab-separated columns, no header: doc_id, annotation_id, label, left context, mention, right context.",
        f"Contexts hold up to {CONTEXT_WORDS} words; DOCSTART / DOCEND mark the document boundaries.",
        "Splits are by document. Labels: " + ", ".join(CONSENSUS_LABELS) + ".",
        "",
    ]
    for split, rows in consensus.items():
        documents = len({row[0] for row in rows})
        labels = Counter(row[2] for row in rows)
        lines.append(f"- {split}: {len(rows)} rows from {documents} documents; labels: {count_lines(labels, CONSENSUS_LABELS)}")
    lines += [
        "",
        "## tagger/ - the consensus test documents as a dictionary tagger run",
        "",
        "The inputs of `python -m bert_tf.classifier.contexts` (docs/prediction_inputs.md): documents.tsv (the",
        "tagger's input: PMID key, authors, journal, year, title, abstract), all_matches.tsv (its --out-matches),",
        "all_entities.tsv, excluded_documents.txt and scientific_names_and_ranks.tsv. Matches labelled `out`",
        "get one of the four types; each organism name has a species and a genus entry.",
    ]
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text with '\\n' line ends, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def generate(out: Path, seed: int) -> None:
    """Generate every demo file under `out`."""
    rng = Random(seed)
    ner_lex = make_ner_lexicons(rng)
    ner = {name: ner_split(size, ner_lex, rng, name != "train") for name, size in NER_SIZES}
    bio_lex = make_bio_lexicons(rng)
    taken: set = set()
    test_documents: List[Document] = []
    consensus = {name: consensus_split(size, bio_lex, rng, name != "train", taken,
                                       test_documents if name == "test" else None)
                 for name, size in CONSENSUS_SIZES}
    for name, examples in ner.items():
        write_text(out / "ner" / f"{name}.csv", ner_csv_text(examples))
    for name, rows in consensus.items():
        write_text(out / "consensus" / f"{name}.tsv", tsv_text(rows))
    write_text(out / "consensus" / "labels.txt", "".join(label + "\n" for label in CONSENSUS_LABELS))
    write_tagger_run(out, test_documents)
    write_text(out / "README.md", readme_text(ner, consensus, seed))


def parse_arguments(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(description="Generate the synthetic demo data sets.")
    parser.add_argument("--out", default="data/demo", help="output folder (default: data/demo)")
    parser.add_argument("--seed", type=int, default=13, help="random seed (default: 13)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point."""
    arguments = parse_arguments(argv)
    generate(Path(arguments.out), arguments.seed)


if __name__ == "__main__":
    main()
