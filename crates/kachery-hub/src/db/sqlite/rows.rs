//! Turning SQLite rows back into validated records. A stored value that no longer parses
//! is reported as [`DbError::CorruptRow`] rather than trusted.

use std::str::FromStr;

use kachery_protocol::node_api::ReadMode;
use kachery_protocol::{ChannelName, Email, Label, NodeId, RoleSet};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::db::{ChannelRecord, DbError, NodeRecord};

/// The channel columns every channel query selects, in this order, aliased `c`.
pub const CHANNEL_COLUMNS: &str = "c.id AS channel_id, c.name AS channel_name, \
     c.owner_email AS channel_owner, c.bucket_backend, c.read_mode, c.pubsub_backend, \
     c.created_at AS channel_created_at, c.deleted_at AS channel_deleted_at";

/// The node columns every node query selects, aliased `n`.
pub const NODE_COLUMNS: &str = "n.id AS node_row_id, n.node_id, n.owner_email, n.label, \
     n.created_at AS node_created_at, n.last_report_at, n.last_report";

pub fn column<'r, T>(row: &'r SqliteRow, name: &'static str) -> Result<T, DbError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(DbError::Query)
}

/// Reads a text column and parses it with the type's own validation.
pub fn parsed<T: FromStr>(row: &SqliteRow, name: &'static str) -> Result<T, DbError>
where
    T::Err: std::fmt::Display,
{
    let text: String = column(row, name)?;
    text.parse().map_err(|error: T::Err| DbError::CorruptRow {
        column: name,
        detail: error.to_string(),
    })
}

pub fn roles(row: &SqliteRow, name: &'static str) -> Result<RoleSet, DbError> {
    Ok(RoleSet::from_bits(column::<i64>(row, name)?))
}

pub fn read_mode_name(mode: ReadMode) -> &'static str {
    match mode {
        ReadMode::Presigned => "presigned",
        ReadMode::Public => "public",
    }
}

fn read_mode(row: &SqliteRow) -> Result<ReadMode, DbError> {
    let text: String = column(row, "read_mode")?;
    match text.as_str() {
        "presigned" => Ok(ReadMode::Presigned),
        "public" => Ok(ReadMode::Public),
        other => Err(DbError::CorruptRow {
            column: "read_mode",
            detail: other.to_owned(),
        }),
    }
}

pub fn channel(row: &SqliteRow) -> Result<ChannelRecord, DbError> {
    Ok(ChannelRecord {
        id: column(row, "channel_id")?,
        name: parsed::<ChannelName>(row, "channel_name")?,
        owner: parsed::<Email>(row, "channel_owner")?,
        bucket_backend: column(row, "bucket_backend")?,
        read_mode: read_mode(row)?,
        pubsub_backend: column(row, "pubsub_backend")?,
        created_at: column(row, "channel_created_at")?,
        deleted: column::<Option<i64>>(row, "channel_deleted_at")?.is_some(),
    })
}

pub fn node(row: &SqliteRow) -> Result<NodeRecord, DbError> {
    Ok(NodeRecord {
        row_id: column(row, "node_row_id")?,
        node_id: parsed::<NodeId>(row, "node_id")?,
        owner: parsed::<Email>(row, "owner_email")?,
        label: parsed::<Label>(row, "label")?,
        created_at: column(row, "node_created_at")?,
        last_report_at: column(row, "last_report_at")?,
        last_report: column(row, "last_report")?,
    })
}

/// Maps a unique-constraint violation to a conflict of `kind`; other errors pass through.
pub fn conflict_as(kind: crate::db::ConflictKind) -> impl Fn(sqlx::Error) -> DbError {
    move |error| match &error {
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            DbError::Conflict(kind)
        }
        _ => DbError::Query(error),
    }
}
