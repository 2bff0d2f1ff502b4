"""Benchmarks of bert-tf against a PyTorch reference: `make bench` runs bench/run_bench.py."""
