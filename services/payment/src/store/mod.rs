//! SQL for payments, wallets, idempotency keys and the warehouse outbox, one text for SQLite and
//! PostgreSQL (`platform::sql`).
//!
//! Every state change is a conditional UPDATE (`... WHERE state = 'WAITING' AND ...`) checked by
//! its row count, so of two racing transactions, on one process or on two replicas sharing a
//! PostgreSQL database, exactly one wins. The warehouse call a change makes necessary is written
//! to `warehouse_outbox` in the same transaction, so it can neither be lost nor happen without
//! the change (`outbox.rs`).

mod outbox;

use std::fmt::Write as _;

use platform::{
    database::{Connection, Database},
    sql::{self, Row, SqlError},
};

use outbox::insert_outbox;
pub use outbox::{OutboxAction, OutboxEntry};

use crate::domain::{
    IdempotencyKey, Move, Operation, PayState, Payment, PaymentItem, Purchase, Replay, Wallet,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// A stored value that the code cannot read back (a bug or a hand-edited row).
    #[error("corrupt data in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
}

/// What a new payment is made of.
pub struct NewPayment {
    pub pay_id: String,
    pub account_id: i64,
    pub items: Vec<PaymentItem>,
    pub total_cents: i64,
    pub purchase: Purchase,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// An idempotency key with the request it was sent with.
#[derive(Clone)]
pub struct KeyedRequest {
    pub key: IdempotencyKey,
    pub operation: Operation,
    pub fingerprint: String,
}

#[derive(Debug)]
pub enum CreateOutcome {
    Created(Payment),
    /// The reservation guard was already claimed by the relay: the reservation is being released,
    /// so the payment must not be stored.
    GuardFired,
    /// A concurrent request with the same idempotency key won; here is its answer.
    KeyTaken(Replay),
}

/// The state change a pay or cancel asks for.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// PAYED, debiting the owner's wallet (created with `opening_balance_cents` if new).
    Pay {
        opening_balance_cents: i64,
    },
    Cancel,
}

#[derive(Debug)]
pub enum ChangeOutcome {
    Changed {
        payment: Payment,
        call: OutboxEntry,
    },
    /// The key was used before; its first answer (perhaps for another request).
    Replayed(Replay),
    NotFound,
    NotOwner,
    /// The payment is final already.
    NotWaiting(PayState),
    /// The window had closed; the payment is TIMEOUT now and its release is queued.
    TimedOut {
        call: Option<OutboxEntry>,
    },
    /// Nothing changed.
    InsufficientBalance,
}

#[derive(Clone)]
pub struct Store {
    database: Database,
}

impl Store {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    // ---- settlement ----------------------------------------------------------------------

    /// Schedules the release of a reservation about to be made, due at `due_ms`.
    pub async fn insert_guard(
        &self,
        pay_id: &str,
        due_ms: i64,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let pay_id = pay_id.to_owned();
        self.database
            .write(move |mut tx| async move {
                let guard =
                    insert_outbox(&mut tx, &pay_id, OutboxAction::Release, due_ms, now_ms).await?;
                tx.commit().await?;
                Ok(guard.id)
            })
            .await
    }

    /// Drops a guard that was never claimed (the reservation was refused, so nothing is owed).
    pub async fn drop_guard(&self, guard_id: i64) -> Result<bool, StoreError> {
        let deleted = sql::query(
            "DELETE FROM warehouse_outbox WHERE id = $1 AND status = 'PENDING' AND attempts = 0",
        )
        .bind(guard_id)
        .execute(&self.database)
        .await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Makes a guard due now (the settlement was abandoned after its reservation was made).
    pub async fn expedite_guard(&self, guard_id: i64, now_ms: i64) -> Result<(), StoreError> {
        sql::query(
            "UPDATE warehouse_outbox SET next_attempt_ms = $2, updated_ms = $2 \
             WHERE id = $1 AND status = 'PENDING' AND next_attempt_ms > $2",
        )
        .bind(guard_id)
        .bind(now_ms)
        .execute(&self.database)
        .await?;
        Ok(())
    }

    /// Stores a WAITING payment whose stock is reserved, cancelling its guard, and records the
    /// idempotency key, all in one transaction.
    pub async fn create_payment(
        &self,
        new: NewPayment,
        guard_id: i64,
        keyed: Option<KeyedRequest>,
    ) -> Result<CreateOutcome, StoreError> {
        let store = self.clone();
        self.database
            .write(move |mut tx| async move {
                let guard = sql::query(
                    "DELETE FROM warehouse_outbox \
                     WHERE id = $1 AND status = 'PENDING' AND attempts = 0",
                )
                .bind(guard_id)
                .execute(&mut *tx)
                .await?;
                if guard.rows_affected() != 1 {
                    return Ok(CreateOutcome::GuardFired);
                }
                let id: i64 = sql::query(
                    "INSERT INTO payments (pay_id, account_id, total_cents, state, created_ms, \
                     expires_ms, updated_ms, recipient_name, telephone, location, pay_method, \
                     delivery) VALUES ($1, $2, $3, 'WAITING', $4, $5, $4, $6, $7, $8, $9, $10) \
                     RETURNING id",
                )
                .bind(&new.pay_id)
                .bind(new.account_id)
                .bind(new.total_cents)
                .bind(new.created_ms)
                .bind(new.expires_ms)
                .bind(&new.purchase.name)
                .bind(&new.purchase.telephone)
                .bind(&new.purchase.location)
                .bind(&new.purchase.pay)
                .bind(&new.purchase.delivery)
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
                insert_items(&mut tx, &new.pay_id, &new.items).await?;
                let payment = Payment {
                    id,
                    pay_id: new.pay_id,
                    account_id: new.account_id,
                    items: new.items,
                    total_cents: new.total_cents,
                    state: PayState::Waiting,
                    created_ms: new.created_ms,
                    expires_ms: new.expires_ms,
                };
                if let Some(keyed) = &keyed
                    && !remember(&mut tx, new.account_id, keyed, &payment, new.created_ms).await?
                {
                    tx.rollback().await?;
                    return match store.replay(new.account_id, &keyed.key).await? {
                        Some(replay) => Ok(CreateOutcome::KeyTaken(replay)),
                        None => Err(corrupt(
                            "idempotency_keys",
                            "a key conflicted but cannot be read".into(),
                        )),
                    };
                }
                tx.commit().await?;
                Ok(CreateOutcome::Created(payment))
            })
            .await
    }

    // ---- pay and cancel ------------------------------------------------------------------

    /// Pays or cancels `pay_id` for `account_id`, if it is theirs and WAITING within its window.
    /// On success the state change, the wallet debit (for a pay), the owed warehouse call and
    /// the idempotency key are committed together.
    pub async fn change_state(
        &self,
        pay_id: &str,
        account_id: i64,
        change: Change,
        now_ms: i64,
        keyed: Option<KeyedRequest>,
    ) -> Result<ChangeOutcome, StoreError> {
        let store = self.clone();
        let pay_id = pay_id.to_owned();
        self.database
            .write(move |mut tx| async move {
                if let Some(keyed) = &keyed
                    && let Some(replay) = find_replay(&mut tx, account_id, &keyed.key).await?
                {
                    return Ok(ChangeOutcome::Replayed(replay));
                }
                let (target, action) = match change {
                    Change::Pay { .. } => (PayState::Payed, OutboxAction::Commit),
                    Change::Cancel => (PayState::Cancel, OutboxAction::Release),
                };
                // The common case in one statement: the owner's WAITING payment within its
                // window changes state. The guard is `Payment::attempt`'s `Move::Allowed`
                // (domain/payment.rs), in SQL so that of two racing changes exactly one wins.
                let changed = sql::query(
                    "UPDATE payments SET state = $2, updated_ms = $3 \
                     WHERE pay_id = $1 AND account_id = $4 AND state = 'WAITING' \
                     AND expires_ms > $3 \
                     RETURNING id, pay_id, account_id, total_cents, state, created_ms, expires_ms",
                )
                .bind(&pay_id)
                .bind(target.as_str())
                .bind(now_ms)
                .bind(account_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = changed else {
                    // Why not: read the payment as it is now.
                    let Some(current) = load_payment(&mut tx, &pay_id).await? else {
                        return Ok(ChangeOutcome::NotFound);
                    };
                    if !current.is_owned_by(account_id) {
                        return Ok(ChangeOutcome::NotOwner);
                    }
                    return match current.attempt(target, now_ms) {
                        Move::WindowClosed => {
                            let call = time_out_in(&mut tx, &pay_id, now_ms).await?;
                            tx.commit().await?;
                            Ok(ChangeOutcome::TimedOut { call })
                        }
                        Move::Final(state) => Ok(ChangeOutcome::NotWaiting(state)),
                        // The guard and the rule disagree: a bug, not the caller's fault.
                        Move::Allowed => Err(corrupt(
                            "payments",
                            format!("{pay_id} is changeable, yet the guarded UPDATE missed it"),
                        )),
                    };
                };
                let items = load_items(&mut tx, &pay_id).await?;
                let payment = payment_from_row(&row, items)?;
                if let Change::Pay {
                    opening_balance_cents,
                } = change
                    && !debit_wallet(
                        &mut tx,
                        account_id,
                        opening_balance_cents,
                        payment.total_cents,
                        now_ms,
                    )
                    .await?
                {
                    tx.rollback().await?;
                    return Ok(ChangeOutcome::InsufficientBalance);
                }
                let call = insert_outbox(&mut tx, &pay_id, action, now_ms, now_ms).await?;
                if let Some(keyed) = &keyed
                    && !remember(&mut tx, account_id, keyed, &payment, now_ms).await?
                {
                    // A concurrent request with this key committed first (PostgreSQL); its
                    // answer wins.
                    tx.rollback().await?;
                    return match store.replay(account_id, &keyed.key).await? {
                        Some(replay) => Ok(ChangeOutcome::Replayed(replay)),
                        None => Err(corrupt(
                            "idempotency_keys",
                            "a key conflicted but cannot be read".into(),
                        )),
                    };
                }
                tx.commit().await?;
                Ok(ChangeOutcome::Changed { payment, call })
            })
            .await
    }

    // ---- expiry --------------------------------------------------------------------------

    /// Pay ids of WAITING payments whose window closed at or before `now_ms`, oldest first.
    pub async fn overdue(&self, now_ms: i64, limit: i64) -> Result<Vec<String>, StoreError> {
        let rows = sql::query(
            "SELECT pay_id FROM payments WHERE state = 'WAITING' AND expires_ms <= $1 \
             ORDER BY expires_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.database)
        .await?;
        rows.iter()
            .map(|row| row.try_get("pay_id").map_err(StoreError::from))
            .collect()
    }

    /// Turns one overdue WAITING payment into TIMEOUT and queues its release. `None` when
    /// another transaction (here or on another replica) got there first.
    pub async fn time_out(
        &self,
        pay_id: &str,
        now_ms: i64,
    ) -> Result<Option<OutboxEntry>, StoreError> {
        let pay_id = pay_id.to_owned();
        self.database
            .write(move |mut tx| async move {
                let call = time_out_in(&mut tx, &pay_id, now_ms).await?;
                tx.commit().await?;
                Ok(call)
            })
            .await
    }

    /// Forgets idempotency keys and delivered outbox rows older than `cutoff_ms`.
    pub async fn forget_before(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let keys = sql::query("DELETE FROM idempotency_keys WHERE created_ms < $1")
            .bind(cutoff_ms)
            .execute(&self.database)
            .await?;
        let done =
            sql::query("DELETE FROM warehouse_outbox WHERE status = 'DONE' AND updated_ms < $1")
                .bind(cutoff_ms)
                .execute(&self.database)
                .await?;
        Ok(keys.rows_affected() + done.rows_affected())
    }

    // ---- reads ---------------------------------------------------------------------------

    pub async fn payment(&self, pay_id: &str) -> Result<Option<Payment>, StoreError> {
        let mut conn = self.database.acquire().await?;
        load_payment(&mut conn, pay_id).await
    }

    /// The account's wallet, created with `opening_balance_cents` if it has none yet.
    pub async fn wallet(
        &self,
        account_id: i64,
        opening_balance_cents: i64,
        now_ms: i64,
    ) -> Result<Wallet, StoreError> {
        ensure_wallet(&self.database, account_id, opening_balance_cents, now_ms).await?;
        let row =
            sql::query("SELECT id, account_id, balance_cents FROM wallets WHERE account_id = $1")
                .bind(account_id)
                .fetch_one(&self.database)
                .await?;
        Ok(Wallet {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            balance_cents: row.try_get("balance_cents")?,
        })
    }

    /// The first answer given for `key` by `account_id`, if any.
    pub async fn replay(
        &self,
        account_id: i64,
        key: &IdempotencyKey,
    ) -> Result<Option<Replay>, StoreError> {
        let mut conn = self.database.acquire().await?;
        find_replay(&mut conn, account_id, key).await
    }
}

fn corrupt(table: &'static str, message: String) -> StoreError {
    StoreError::Corrupt { table, message }
}

/// The conditional WAITING -> TIMEOUT change (`PayState::may_become`'s third edge, once the window
/// has closed: `Payment::is_overdue`) plus the release it owes, inside `tx`.
async fn time_out_in(
    tx: &mut Connection,
    pay_id: &str,
    now_ms: i64,
) -> Result<Option<OutboxEntry>, StoreError> {
    let changed = sql::query(
        "UPDATE payments SET state = 'TIMEOUT', updated_ms = $2 \
         WHERE pay_id = $1 AND state = 'WAITING' AND expires_ms <= $2",
    )
    .bind(pay_id)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() != 1 {
        return Ok(None);
    }
    let call = insert_outbox(tx, pay_id, OutboxAction::Release, now_ms, now_ms).await?;
    Ok(Some(call))
}

async fn ensure_wallet(
    database: &Database,
    account_id: i64,
    opening_balance_cents: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sql::query(
        "INSERT INTO wallets (account_id, balance_cents, opening_cents, created_ms, updated_ms) \
         VALUES ($1, $2, $2, $3, $3) ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(account_id)
    .bind(opening_balance_cents)
    .bind(now_ms)
    .execute(database)
    .await?;
    Ok(())
}

/// Takes `amount_cents` from the account's wallet, opening it with `opening_balance_cents`
/// first if it has none: one statement. False, and nothing written, when the balance would go
/// below zero (the rule that a wallet never goes negative lives here, in the WHEREs).
async fn debit_wallet(
    conn: &mut Connection,
    account_id: i64,
    opening_balance_cents: i64,
    amount_cents: i64,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let debited = sql::query(
        "INSERT INTO wallets (account_id, balance_cents, opening_cents, created_ms, updated_ms) \
         SELECT $1, $2 - $4, $2, $3, $3 WHERE $2 >= $4 \
         ON CONFLICT (account_id) DO UPDATE \
         SET balance_cents = wallets.balance_cents - $4, updated_ms = $3 \
         WHERE wallets.balance_cents >= $4",
    )
    .bind(account_id)
    .bind(opening_balance_cents)
    .bind(now_ms)
    .bind(amount_cents)
    .execute(conn)
    .await?;
    Ok(debited.rows_affected() == 1)
}

fn parse_state(row: &Row) -> Result<PayState, StoreError> {
    row.try_get::<String, _>("state")?
        .parse::<PayState>()
        .map_err(|e| corrupt("payments", e.to_string()))
}

/// Every line of a payment in one statement (a cart holds at most 1000 lines, far below either
/// database's limit on bound values).
async fn insert_items(
    conn: &mut Connection,
    pay_id: &str,
    items: &[PaymentItem],
) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut sql =
        String::from("INSERT INTO payment_items (pay_id, product_id, amount, price_cents) VALUES ");
    for line in 0..items.len() {
        let first = 2 + 3 * line;
        if line > 0 {
            sql.push_str(", ");
        }
        // `$1` is the pay id on every line.
        let _ = write!(sql, "($1, ${first}, ${}, ${})", first + 1, first + 2);
    }
    let mut insert = sql::query(&sql).bind(pay_id);
    for item in items {
        insert = insert
            .bind(item.product_id)
            .bind(item.amount)
            .bind(item.price_cents);
    }
    insert.execute(conn).await?;
    Ok(())
}

async fn load_payment(conn: &mut Connection, pay_id: &str) -> Result<Option<Payment>, StoreError> {
    let Some(row) = sql::query(
        "SELECT id, pay_id, account_id, total_cents, state, created_ms, expires_ms \
         FROM payments WHERE pay_id = $1",
    )
    .bind(pay_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let items = load_items(conn, pay_id).await?;
    payment_from_row(&row, items).map(Some)
}

async fn load_items(conn: &mut Connection, pay_id: &str) -> Result<Vec<PaymentItem>, StoreError> {
    let rows = sql::query(
        "SELECT product_id, amount, price_cents FROM payment_items WHERE pay_id = $1 \
         ORDER BY product_id",
    )
    .bind(pay_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|item| {
            Ok(PaymentItem {
                product_id: item.try_get("product_id")?,
                amount: item.try_get("amount")?,
                price_cents: item.try_get("price_cents")?,
            })
        })
        .collect()
}

/// A payment from a row of `id, pay_id, account_id, total_cents, state, created_ms, expires_ms`.
fn payment_from_row(row: &Row, items: Vec<PaymentItem>) -> Result<Payment, StoreError> {
    Ok(Payment {
        id: row.try_get("id")?,
        pay_id: row.try_get("pay_id")?,
        account_id: row.try_get("account_id")?,
        items,
        total_cents: row.try_get("total_cents")?,
        state: parse_state(row)?,
        created_ms: row.try_get("created_ms")?,
        expires_ms: row.try_get("expires_ms")?,
    })
}

/// Stores the answer for a key; false when the key exists already (nothing is written then).
async fn remember(
    conn: &mut Connection,
    account_id: i64,
    keyed: &KeyedRequest,
    payment: &Payment,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let response =
        serde_json::to_string(payment).map_err(|e| corrupt("idempotency_keys", e.to_string()))?;
    let inserted = sql::query(
        "INSERT INTO idempotency_keys (account_id, idempotency_key, operation, fingerprint, \
         response, created_ms) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (account_id, idempotency_key) DO NOTHING",
    )
    .bind(account_id)
    .bind(keyed.key.as_str())
    .bind(keyed.operation.as_str())
    .bind(keyed.fingerprint.as_str())
    .bind(response)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

async fn find_replay(
    conn: &mut Connection,
    account_id: i64,
    key: &IdempotencyKey,
) -> Result<Option<Replay>, StoreError> {
    let Some(row) = sql::query(
        "SELECT operation, fingerprint, response FROM idempotency_keys \
         WHERE account_id = $1 AND idempotency_key = $2",
    )
    .bind(account_id)
    .bind(key.as_str())
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let response: String = row.try_get("response")?;
    let payment: Payment =
        serde_json::from_str(&response).map_err(|e| corrupt("idempotency_keys", e.to_string()))?;
    Ok(Some(Replay {
        operation: row.try_get("operation")?,
        fingerprint: row.try_get("fingerprint")?,
        payment,
    }))
}
