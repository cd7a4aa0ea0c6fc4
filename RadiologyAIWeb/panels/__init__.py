"""One panel per module, mirroring its Slicer widget (see base.py for what they share)."""
