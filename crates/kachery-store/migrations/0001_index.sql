-- The cache index of the local store (SPEC §14.4). Append new migrations; never edit this one.

-- Complete blobs under sha1/. The file on disk is the truth; a row says how it got there
-- and when it was last used, for eviction.
CREATE TABLE blobs (
    sha1 TEXT PRIMARY KEY NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'manifest')),
    pinned INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    last_access_at INTEGER NOT NULL
);
CREATE INDEX blobs_by_eviction_order ON blobs (pinned, last_access_at);

-- Chunks are never stored on their own: each one is a byte range of a whole blob.
CREATE TABLE chunks (
    chunk_sha1 TEXT NOT NULL,
    whole_sha1 TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    PRIMARY KEY (chunk_sha1, whole_sha1, start)
);
CREATE INDEX chunks_by_whole ON chunks (whole_sha1);

-- Multi-chunk files being assembled under partial/. done_chunks holds one character per
-- manifest chunk, '1' once that chunk is written and synced, else '0'.
CREATE TABLE partials (
    sha1 TEXT PRIMARY KEY NOT NULL,
    size INTEGER NOT NULL,
    manifest_sha1 TEXT NOT NULL,
    done_chunks TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
