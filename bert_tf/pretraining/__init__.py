"""Continued masked-LM pretraining (run_pretraining.py): text inputs, whole-word masking and packing, the masked-LM
model with its head read from the checkpoint, evaluation, and the Hugging Face BertForMaskedLM output."""
