from .base import Panel


class PhantomQAPanel(Panel):
    name = "phantomqa"
    title = "PhantomQA"

    def build(self):
        pass
