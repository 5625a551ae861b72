"""``hanshu`` / ``python -m hanshu_cli``."""

from __future__ import annotations

from .app import app


def main() -> None:
    app(prog_name="hanshu")


if __name__ == "__main__":
    main()
