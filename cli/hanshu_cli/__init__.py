"""hanshu_cli: the ``hanshu`` command (init, deploy, get, describe, invoke, logs, usage) and
dev mode, the whole platform on this machine. It sits on top of the components and may
import any of them; none of them imports it."""
