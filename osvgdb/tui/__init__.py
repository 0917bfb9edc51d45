"""`osvgdb tui`: the interactive inspector (see osvgdb.tui.command)."""
