"""`python -m bert_tf.export`: the export command line, which lives in bert_tf.checkpoints.export."""

import sys

from bert_tf.checkpoints.export import main

if __name__ == "__main__":
    sys.exit(main())
