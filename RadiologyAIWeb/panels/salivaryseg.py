from .base import Panel


class SalivarySegPanel(Panel):
    name = "salivaryseg"
    title = "SalivarySeg"

    def build(self):
        pass
