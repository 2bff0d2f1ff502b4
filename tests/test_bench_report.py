"""bench/report.py's sections of the separate benches, and bench/pretraining_ner.py's reuse of finished runs."""

import json
import os
import statistics

from bench import pretraining_ner, report


def _arm(steps, f1s, seeds=(13, 14, 15)):
    """An arm of bench/pretraining_ner.py's JSON with these test F1s."""
    ner = [{"seed": s, "f1": f, "best_validation_f1": f, "seconds": 10.0} for s, f in zip(seeds, f1s)]
    return {"steps": steps, "ner": ner, "f1_mean": statistics.mean(f1s), "f1_std": statistics.stdev(f1s),
            "perplexity": 100.0 / (1 + steps), "accuracy": 0.1, "pretrain_seconds": steps}


def test_the_effect_is_the_difference_of_means_with_the_welch_error_and_per_seed():
    base, arm = _arm(0, [0.40, 0.42, 0.44]), _arm(100, [0.43, 0.44, 0.48])
    # means 42 and 45 points; variances 4 and 7 (points^2) over 3 seeds each: error sqrt(4/3 + 7/3)
    assert report._effect(arm, base) == f"+3.00 ± {(11 / 3) ** 0.5:.2f} (per seed: +3.00, +2.00, +4.00)"
    assert report._effect({"ner": arm["ner"][:1]}, base) == "-"  # one seed: no spread to judge by


def test_the_pretraining_table_sets_each_arm_against_the_base_model():
    lines = report.pretraining_ner_table([_arm(0, [0.40, 0.42, 0.44]), _arm(300, [0.39, 0.41, 0.43])])
    assert lines[0].startswith("| masked-LM steps |") and "test F1 per seed (13, 14, 15)" in lines[0]
    assert lines[2].split(" | ")[5] == "-"  # the base has no difference from itself
    assert "-1.00 ± 1.63 (per seed: -1.00, -1.00, -1.00)" in lines[3]


def test_an_arm_without_the_head_warm_up_is_set_against_the_arm_with_it():
    args = {"dataset": "turku_ner", "pretrain_batch": 16, "pretrain_len": 128, "pretrain_lr": 1e-4,
            "ner_sentences": 3000, "ner_epochs": 4, "ner_lr": 1e-4, "ner_batch": 16, "ner_max_len": 128}
    common = {"cpu": "CPU", "gemm_gflops": 100.0}
    with_it = dict(common, args=dict(args, head_warmup_steps=None), arms=[_arm(0, [0.40, 0.42, 0.44]),
                                                                          _arm(100, [0.44, 0.45, 0.46])])
    without = dict(common, args=dict(args, head_warmup_steps=0, skip_base=True), arms=[_arm(100, [0.41, 0.43, 0.45])])
    text = "\n".join(report.pretraining_ner_lines({"with": with_it, "without": without}))
    assert "the head warm-up off (`--head_warmup_steps=0`)" in text
    assert "| 100 (with the head warm-up) |" in text
    assert "-2.00 ± 1.29 (per seed: -3.00, -2.00, -1.00)" in text


def test_add_puts_a_bench_json_under_a_nested_key_and_keeps_the_rest(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"command": "python bench/run_bench.py", "pretraining_ner": {"a": 1}}))
    (tmp_path / "b.json").write_text(json.dumps({"x": 2}))
    merged = report.add(str(results), [f"pretraining_ner.b={tmp_path / 'b.json'}"])
    assert merged == {"command": "python bench/run_bench.py", "pretraining_ner": {"a": 1, "b": {"x": 2}}}
    assert json.loads(results.read_text()) == merged


def test_a_finished_run_is_not_repeated_unless_its_command_changed(tmp_path):
    out, log = str(tmp_path / "run"), str(tmp_path / "log.txt")
    count = tmp_path / "count"
    script = f"import os; os.makedirs({out!r}, exist_ok=True); open({str(count)!r}, 'a').write('x')"
    pretraining_ner.run(["-c", script], out, log)
    pretraining_ner.run(["-c", script], out, log)
    assert count.read_text() == "x"
    assert json.loads(open(out + ".bench.json").read())["command"] == ["-c", script]
    pretraining_ner.run(["-c", script + "  # changed"], out, log)
    assert count.read_text() == "xx"
    os.rename(out, out + ".moved")  # the output gone: run again
    pretraining_ner.run(["-c", script], out, log)
    assert count.read_text() == "xxx"
