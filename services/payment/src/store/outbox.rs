//! The warehouse outbox: calls owed to the warehouse by committed state changes, written in the
//! same transaction as the change, then claimed, delivered and finished by `crate::outbox`.

use platform::{
    database::Connection,
    sql::{self, Row},
    trace_context,
};

use super::{Store, StoreError, corrupt};

/// A warehouse call owed by a committed state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxAction {
    /// The reserved units leave for good (after PAYED).
    Commit,
    /// The reserved units go back on sale (after CANCEL or TIMEOUT, or an abandoned settlement).
    Release,
}

impl OutboxAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Commit => "COMMIT",
            Self::Release => "RELEASE",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "COMMIT" => Ok(Self::Commit),
            "RELEASE" => Ok(Self::Release),
            other => Err(corrupt("warehouse_outbox", format!("action {other:?}"))),
        }
    }
}

/// One pending outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub pay_id: String,
    pub action: OutboxAction,
    /// Delivery attempts claimed so far; a claim is conditional on this value.
    pub attempts: i64,
    /// The W3C trace context of the request that owed the call, when traces were exported.
    pub traceparent: Option<String>,
}

impl Store {
    /// Calls still owed (due now or scheduled, such as reservation guards).
    pub async fn pending_calls(&self) -> Result<i64, StoreError> {
        let row =
            sql::query("SELECT COUNT(*) AS pending FROM warehouse_outbox WHERE status = 'PENDING'")
                .fetch_one(&self.database)
                .await?;
        Ok(row.try_get("pending")?)
    }

    /// Pending calls due at `now_ms`, oldest first.
    pub async fn due_calls(&self, now_ms: i64, limit: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sql::query(
            "SELECT id, pay_id, action, attempts, traceparent FROM warehouse_outbox \
             WHERE status = 'PENDING' AND next_attempt_ms <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.database)
        .await?;
        rows.iter().map(outbox_entry).collect()
    }

    /// Takes a call for one delivery attempt: counts the attempt and pushes its next try to
    /// `retry_at_ms`. False when someone else claimed it first (or it is no longer pending).
    pub async fn claim(
        &self,
        call: &OutboxEntry,
        retry_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let claimed = sql::query(
            "UPDATE warehouse_outbox SET attempts = attempts + 1, next_attempt_ms = $3, \
             updated_ms = $4 WHERE id = $1 AND status = 'PENDING' AND attempts = $2",
        )
        .bind(call.id)
        .bind(call.attempts)
        .bind(retry_at_ms)
        .bind(now_ms)
        .execute(&self.database)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Records the outcome of a claimed attempt: `DONE`, `DEAD` (with why), or still `PENDING`
    /// (with the last error) for a retry.
    pub async fn finish_attempt(
        &self,
        call_id: i64,
        status: &'static str,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sql::query(
            "UPDATE warehouse_outbox SET status = $2, last_error = $3, updated_ms = $4 \
             WHERE id = $1 AND status = 'PENDING'",
        )
        .bind(call_id)
        .bind(status)
        .bind(error.map(str::to_owned))
        .bind(now_ms)
        .execute(&self.database)
        .await?;
        Ok(())
    }
}

/// Records an owed call, with the trace context of the request that owes it (so that its
/// delivery, perhaps in another process after a restart, links back to that request).
pub(super) async fn insert_outbox(
    conn: &mut Connection,
    pay_id: &str,
    action: OutboxAction,
    due_ms: i64,
    now_ms: i64,
) -> Result<OutboxEntry, StoreError> {
    let traceparent = trace_context::current_traceparent();
    let row = sql::query(
        "INSERT INTO warehouse_outbox (pay_id, action, status, attempts, next_attempt_ms, \
         created_ms, updated_ms, traceparent) VALUES ($1, $2, 'PENDING', 0, $3, $4, $4, $5) \
         RETURNING id",
    )
    .bind(pay_id)
    .bind(action.as_str())
    .bind(due_ms)
    .bind(now_ms)
    .bind(traceparent.as_deref())
    .fetch_one(conn)
    .await?;
    Ok(OutboxEntry {
        id: row.try_get("id")?,
        pay_id: pay_id.to_owned(),
        action,
        attempts: 0,
        traceparent,
    })
}

fn outbox_entry(row: &Row) -> Result<OutboxEntry, StoreError> {
    Ok(OutboxEntry {
        id: row.try_get("id")?,
        pay_id: row.try_get("pay_id")?,
        action: OutboxAction::parse(row.try_get::<String, _>("action")?.as_str())?,
        attempts: row.try_get("attempts")?,
        traceparent: row.try_get("traceparent")?,
    })
}
