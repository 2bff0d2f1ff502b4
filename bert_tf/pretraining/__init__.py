"""Continued masked-LM pretraining (run_pretraining.py): text inputs, whole-word masking and packing, the masked-LM
model with its head read from the checkpoint, evaluation, and the Hugging Face BertForMaskedLM output; and
create_pretraining_data, which writes next-sentence + masked-LM TFRecords from raw text as Google's script does."""
