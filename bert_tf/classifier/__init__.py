"""Entity-type classification of tagger matches: the consensus reader, featurization and its cache,
evaluation, prediction and calibration, prediction files, corpus shards and blocklists."""
