"""Exit 0 once the PostgreSQL server in argv[1] accepts connections, 1 after argv[2] seconds."""

import sys
import time

import dj_database_url
import psycopg


def main() -> int:
    config = dj_database_url.parse(sys.argv[1])
    deadline = time.monotonic() + float(sys.argv[2])
    while True:
        try:
            psycopg.connect(
                host=config["HOST"] or "127.0.0.1",
                port=config["PORT"] or 5432,
                user=config["USER"],
                password=config["PASSWORD"] or None,
                dbname=config["NAME"],
                connect_timeout=2,
            ).close()
            return 0
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                return 1
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
