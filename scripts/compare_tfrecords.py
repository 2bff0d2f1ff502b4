"""Compare two TFRecord files of tf.train.Example records feature by feature: same number of records, and in each
record the same feature names, value kinds (int64/float/bytes) and values. Prints the first difference and exits 1,
else prints the number of records compared and exits 0.

    python scripts/compare_tfrecords.py EXPECTED.tfrecord ACTUAL.tfrecord
"""

from __future__ import annotations

import sys
from typing import Dict, List, Optional, Tuple

Features = Dict[str, Tuple[str, list]]


def read_records(path: str) -> List[Features]:
    """Every record of a TFRecord file as {feature name: (kind, values)}."""
    import tensorflow as tf

    records = []
    for raw in tf.data.TFRecordDataset(path):
        example = tf.train.Example.FromString(raw.numpy())
        records.append({name: (feature.WhichOneof("kind"), list(getattr(feature, feature.WhichOneof("kind")).value))
                        for name, feature in example.features.feature.items()})
    return records


def first_difference(expected: List[Features], actual: List[Features]) -> Optional[str]:
    """A line saying where the records first differ, or None when they are equal."""
    for index, (want, got) in enumerate(zip(expected, actual)):
        if want.keys() != got.keys():
            return f"record {index}: features {sorted(want)} != {sorted(got)}"
        for name in want:
            if want[name] != got[name]:
                return f"record {index}: {name}: {want[name]} != {got[name]}"
    if len(expected) != len(actual):
        return f"{len(expected)} records != {len(actual)}"
    return None


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    expected, actual = read_records(sys.argv[1]), read_records(sys.argv[2])
    difference = first_difference(expected, actual)
    if difference:
        print(f"DIFFERENT {sys.argv[1]} {sys.argv[2]}: {difference}")
        sys.exit(1)
    print(f"equal: {len(expected)} records, every feature ({sys.argv[1]} = {sys.argv[2]})")


if __name__ == "__main__":
    main()
