"""The server's commands, registered with ``autopeft`` through the ``autopeft.commands`` entry points:
``autopeft serve`` (:mod:`.serve`) and ``autopeft db`` (:mod:`.db`). Each imports only argparse until it runs."""
