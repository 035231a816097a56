"""The seeds' state DB and a settled digest of a SQLite file, shared by tests and the demo."""

import gc
import hashlib
import os
import sqlite3

# The original Flask app's schema (v1), holding only test and test-2: the seeds' story.
LEGACY_SCHEMA = '''
    CREATE TABLE servers (id INTEGER PRIMARY KEY, name VARCHAR(100) UNIQUE NOT NULL, vmid INTEGER,
        status VARCHAR(20), ip_address VARCHAR(50), role VARCHAR(50), cpu INTEGER, memory INTEGER,
        os_type VARCHAR(50), created_at DATETIME, updated_at DATETIME);
    INSERT INTO servers (name, status, role) VALUES ('test', 'unknown', 'web'), ('test-2', 'unknown', NULL);
'''


def legacy_db(path, extra=''):
    """Write the seeds' DB at path (replacing any DB there); `extra` is more SQL."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA + extra)
    conn.commit()
    conn.close()


def settled_digest(path):
    """sha256 of the DB file once every connection is closed and the WAL is checkpointed.

    Closing SQLite's last connection folds the WAL into the file, so comparing
    raw bytes is only meaningful from a settled state; any committed write
    still shows, since the checkpoint copies it into the file.
    """
    gc.collect()  # closes the engines of earlier in-process module runs
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(path)
    conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    conn.close()
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()
