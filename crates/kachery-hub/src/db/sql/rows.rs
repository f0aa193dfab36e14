//! Turning rows of either driver back into validated records. A stored value that no
//! longer parses is reported as [`DbError::CorruptRow`] rather than trusted.

use std::str::FromStr;

use kachery_protocol::node_api::ReadMode;
use kachery_protocol::{ChannelName, Email, Label, NodeId, RoleSet};
use sqlx::{ColumnIndex, Decode, Executor, Row, Type};

use super::{Backend, SqlArg, SqlDb, SqlValue};
use crate::db::{ChannelRecord, DbError, NodeRecord};

/// The channel columns every channel query selects, in this order, aliased `c`.
pub const CHANNEL_COLUMNS: &str = "c.id AS channel_id, c.name AS channel_name, \
     c.owner_email AS channel_owner, c.bucket_backend, c.bucket_config, c.read_mode, \
     c.pubsub_backend, c.pubsub_config, \
     c.created_at AS channel_created_at, c.deleted_at AS channel_deleted_at";

/// The node columns every node query selects, aliased `n`.
pub const NODE_COLUMNS: &str = "n.id AS node_row_id, n.node_id, n.owner_email, n.label, \
     n.created_at AS node_created_at, n.last_report_at, n.last_report";

pub fn read_mode_name(mode: ReadMode) -> &'static str {
    match mode {
        ReadMode::Presigned => "presigned",
        ReadMode::Public => "public",
    }
}

impl<DB> SqlDb<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row> + SqlArg<DB>,
    i64: SqlValue<DB>,
    bool: SqlValue<DB>,
    String: SqlValue<DB>,
    Option<i64>: SqlValue<DB>,
    Option<String>: SqlValue<DB>,
{
    /// Reads one column by name.
    pub(super) fn column<'r, T>(row: &'r DB::Row, name: &'static str) -> Result<T, DbError>
    where
        T: Decode<'r, DB> + Type<DB>,
    {
        row.try_get(name).map_err(DbError::Query)
    }

    /// Reads a text column and parses it with the type's own validation.
    pub(super) fn parsed<T: FromStr>(row: &DB::Row, name: &'static str) -> Result<T, DbError>
    where
        T::Err: std::fmt::Display,
    {
        let text: String = Self::column(row, name)?;
        text.parse().map_err(|error: T::Err| DbError::CorruptRow {
            column: name,
            detail: error.to_string(),
        })
    }

    pub(super) fn roles(row: &DB::Row, name: &'static str) -> Result<RoleSet, DbError> {
        Ok(RoleSet::from_bits(Self::column::<i64>(row, name)?))
    }

    fn read_mode(row: &DB::Row) -> Result<ReadMode, DbError> {
        let text: String = Self::column(row, "read_mode")?;
        match text.as_str() {
            "presigned" => Ok(ReadMode::Presigned),
            "public" => Ok(ReadMode::Public),
            other => Err(DbError::CorruptRow {
                column: "read_mode",
                detail: other.to_owned(),
            }),
        }
    }

    /// A channel from the [`CHANNEL_COLUMNS`] of a row.
    pub(super) fn channel_row(row: &DB::Row) -> Result<ChannelRecord, DbError> {
        Ok(ChannelRecord {
            id: Self::column(row, "channel_id")?,
            name: Self::parsed::<ChannelName>(row, "channel_name")?,
            owner: Self::parsed::<Email>(row, "channel_owner")?,
            bucket_backend: Self::column(row, "bucket_backend")?,
            bucket_config: Self::column(row, "bucket_config")?,
            read_mode: Self::read_mode(row)?,
            pubsub_backend: Self::column(row, "pubsub_backend")?,
            pubsub_config: Self::column(row, "pubsub_config")?,
            created_at: Self::column(row, "channel_created_at")?,
            deleted: Self::column::<Option<i64>>(row, "channel_deleted_at")?.is_some(),
        })
    }

    /// A node from the [`NODE_COLUMNS`] of a row.
    pub(super) fn node_row(row: &DB::Row) -> Result<NodeRecord, DbError> {
        Ok(NodeRecord {
            row_id: Self::column(row, "node_row_id")?,
            node_id: Self::parsed::<NodeId>(row, "node_id")?,
            owner: Self::parsed::<Email>(row, "owner_email")?,
            label: Self::parsed::<Label>(row, "label")?,
            created_at: Self::column(row, "node_created_at")?,
            last_report_at: Self::column(row, "last_report_at")?,
            last_report: Self::column(row, "last_report")?,
        })
    }
}
