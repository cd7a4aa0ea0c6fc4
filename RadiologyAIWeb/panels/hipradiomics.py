from .base import Panel


class HipRadiomicsPanel(Panel):
    name = "hipradiomics"
    title = "HipRadiomics"

    def build(self):
        pass
