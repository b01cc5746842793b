"""Tables and figures drawn from a run's tidy records; sharing a run on the Hugging Face Hub
(share.py: the upload plan and the model card of `emergent push`)."""
