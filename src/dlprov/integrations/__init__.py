"""Framework integrations, one module each, importing their framework lazily:
``torch`` (plain loops), ``lightning``, ``keras``, ``deepxde``. All record into the paper's sets
through :class:`dlprov.integrations.common.TrainingCapture`."""
