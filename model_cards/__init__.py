"""Jinja templates for model cards; shipped inside the package as hf_transfer.model_cards."""
