"""The server's commands, registered with ``autopeft`` through the ``autopeft.commands`` entry points:
``autopeft serve`` (:mod:`.serve`), ``autopeft db`` (:mod:`.db`) and ``autopeft serve-model``
(:mod:`.serve_model`). Each imports only argparse until it runs."""
