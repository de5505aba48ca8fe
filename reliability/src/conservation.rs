//! The conservation audit: nothing sold that was not put in, nothing charged without goods,
//! nothing held for a payment that no longer waits.
//!
//! It reads both services' own records, each in one read-only transaction (a consistent snapshot
//! per database), and compares records that are written independently:
//!
//! | record | kept by | written when |
//! | --- | --- | --- |
//! | `stock_receipts` (signed changes of the sellable amount) | warehouse | an administrator sets stock, the demo seed |
//! | `stockpiles` (amount, frozen) | warehouse | every reserve, commit, release and stock change |
//! | `reservations` + `reservation_lines` | warehouse | reserve, commit, release |
//! | `payments` + `payment_items` | payment | settle, pay, cancel, timeout |
//! | `wallets` (opening and current balance) | payment | first use, every pay |
//! | `warehouse_outbox` (owed commits and releases) | payment | every state change |
//!
//! The checks (see [`Snapshot::check`]):
//!
//! - per product: stock put in (Σ receipts) = amount + frozen + committed; frozen = Σ lines of
//!   RESERVED reservations; amount and frozen never negative; units the warehouse committed =
//!   units of PAYED payments (two independent records of "sold");
//! - per payment: WAITING ⇔ RESERVED, PAYED ⇔ COMMITTED, CANCEL/TIMEOUT ⇔ RELEASED (a settlement
//!   whose payment was never stored may leave a RELEASED reservation and nothing else), with the
//!   same items on both sides; no WAITING payment long past its window (stuck);
//! - per wallet: opening balance = balance + Σ PAYED totals, and the balance is never negative;
//! - no warehouse call the payment service gave up on (outbox `DEAD`).
//!
//! Differences that an owed warehouse call (a `PENDING` outbox row) will still resolve are
//! reported as *in flight*, not as violations; [`verify`] re-reads until nothing is in flight
//! and nothing is violated, or its deadline passes.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Duration,
};

use sqlx::{Any, AnyConnection, Connection, Row, Transaction};

/// Where the two services keep their data: `sqlite://path` or `postgres://…` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub warehouse_db: String,
    pub payment_db: String,
}

/// How the audit judges time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// A WAITING payment this long past its expiry counts as stuck (the sweeper runs every
    /// second or so, and a restarted payment service times out overdue payments at once).
    pub stuck_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stuck_after: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the {database} database: {source}")]
    Connect {
        database: &'static str,
        source: sqlx::Error,
    },
    #[error("cannot read the {database} database: {source}")]
    Read {
        database: &'static str,
        source: sqlx::Error,
    },
}

/// One product's stock as the warehouse records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProductStock {
    pub amount: i64,
    pub frozen: i64,
    /// Σ of the product's stock receipts.
    pub put_in: i64,
}

/// A reservation's state in the warehouse ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReservationState {
    Reserved,
    Committed,
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub state: ReservationState,
    /// Units per product.
    pub lines: BTreeMap<i64, i64>,
}

/// The warehouse's side of the books.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarehouseBooks {
    pub products: BTreeMap<i64, ProductStock>,
    /// By payment id.
    pub reservations: BTreeMap<String, Reservation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PayState {
    Waiting,
    Cancel,
    Payed,
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub account_id: i64,
    pub state: PayState,
    pub total_cents: i64,
    /// Unix milliseconds.
    pub expires_ms: i64,
    /// Units per product.
    pub items: BTreeMap<i64, i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalletRecord {
    pub opening_cents: i64,
    pub balance_cents: i64,
}

/// A warehouse call the payment service still owes (or gave up on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OwedAction {
    Commit,
    Release,
}

/// The payment service's side of the books.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentBooks {
    /// By pay id.
    pub payments: BTreeMap<String, PaymentRecord>,
    /// By account id.
    pub wallets: BTreeMap<i64, WalletRecord>,
    /// Outbox rows still to be delivered: (pay id, action).
    pub pending: BTreeSet<(String, OwedAction)>,
    /// Outbox rows the relay gave up on.
    pub dead: BTreeSet<(String, OwedAction)>,
}

/// Both services' books, read at about the same moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub warehouse: WarehouseBooks,
    pub payment: PaymentBooks,
    /// When the snapshot was taken (Unix milliseconds), for the stuck-payment rule.
    pub taken_at_ms: i64,
}

/// What the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Broken invariants: each one means stock or money was lost, created or misdirected.
    pub violations: Vec<String>,
    /// Differences that an owed warehouse call will still resolve.
    pub in_flight: Vec<String>,
    pub products: usize,
    pub payments: usize,
    pub wallets: usize,
    /// Payments still WAITING (their stock is legitimately frozen).
    pub waiting: usize,
}

impl Report {
    /// Nothing violated and nothing left in flight.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty() && self.in_flight.is_empty()
    }

    /// Clean, and every payment has reached a final state (so no stock is frozen).
    pub fn is_final(&self) -> bool {
        self.is_clean() && self.waiting == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audited {} products, {} payments ({} waiting), {} wallets: {} violations, {} in \
             flight",
            self.products,
            self.payments,
            self.waiting,
            self.wallets,
            self.violations.len(),
            self.in_flight.len()
        )?;
        for violation in &self.violations {
            writeln!(f, "  VIOLATION {violation}")?;
        }
        for pending in &self.in_flight {
            writeln!(f, "  in flight {pending}")?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// Reads both databases. Each is read in one read-only transaction; the two reads are not
    /// one atomic moment, which is why differences an owed call explains count as in flight.
    pub async fn read(sources: &Sources) -> Result<Self, AuditError> {
        let warehouse = read_warehouse(&sources.warehouse_db).await?;
        let payment = read_payment(&sources.payment_db).await?;
        Ok(Self {
            warehouse,
            payment,
            taken_at_ms: platform::clock::now_ms(),
        })
    }

    /// Applies every rule of the module documentation.
    pub fn check(&self, options: &Options) -> Report {
        let mut report = Report {
            products: self.warehouse.products.len(),
            payments: self.payment.payments.len(),
            wallets: self.payment.wallets.len(),
            waiting: (self.payment.payments.values())
                .filter(|p| p.state == PayState::Waiting)
                .count(),
            ..Report::default()
        };
        self.check_products(&mut report);
        self.check_payments(options, &mut report);
        self.check_wallets(&mut report);
        for (pay_id, action) in &self.payment.dead {
            report.violations.push(format!(
                "payment {pay_id}: the payment service gave up on {action:?} in the warehouse"
            ));
        }
        report
    }

    fn check_products(&self, report: &mut Report) {
        let mut reserved: BTreeMap<i64, i64> = BTreeMap::new();
        let mut committed: BTreeMap<i64, i64> = BTreeMap::new();
        for reservation in self.warehouse.reservations.values() {
            let bucket = match reservation.state {
                ReservationState::Reserved => &mut reserved,
                ReservationState::Committed => &mut committed,
                ReservationState::Released => continue,
            };
            for (&product, &units) in &reservation.lines {
                *bucket.entry(product).or_default() += units;
            }
        }
        let mut sold: BTreeMap<i64, i64> = BTreeMap::new();
        for payment in self.payment.payments.values() {
            if payment.state == PayState::Payed {
                for (&product, &units) in &payment.items {
                    *sold.entry(product).or_default() += units;
                }
            }
        }
        // A commit the payment service still owes explains units sold but not yet committed.
        let mut owed_commits: BTreeMap<i64, i64> = BTreeMap::new();
        for (pay_id, action) in &self.payment.pending {
            if let (OwedAction::Commit, Some(payment)) = (action, self.payment.payments.get(pay_id))
            {
                for (&product, &units) in &payment.items {
                    *owed_commits.entry(product).or_default() += units;
                }
            }
        }
        for (&product, stock) in &self.warehouse.products {
            let reserved = reserved.get(&product).copied().unwrap_or(0);
            let committed = committed.get(&product).copied().unwrap_or(0);
            let sold = sold.get(&product).copied().unwrap_or(0);
            if stock.amount < 0 || stock.frozen < 0 {
                report.violations.push(format!(
                    "product {product}: negative stock (amount {}, frozen {})",
                    stock.amount, stock.frozen
                ));
            }
            if stock.frozen != reserved {
                report.violations.push(format!(
                    "product {product}: frozen {} but open reservations hold {reserved}",
                    stock.frozen
                ));
            }
            let accounted = stock.amount + stock.frozen + committed;
            if stock.put_in != accounted {
                report.violations.push(format!(
                    "product {product}: {} put in but amount {} + frozen {} + sold {committed} = \
                     {accounted}",
                    stock.put_in, stock.amount, stock.frozen
                ));
            }
            if committed != sold {
                let owed = owed_commits.get(&product).copied().unwrap_or(0);
                let message = format!(
                    "product {product}: the warehouse committed {committed} units, paid payments \
                     hold {sold}"
                );
                if committed < sold && committed + owed >= sold {
                    report.in_flight.push(message);
                } else {
                    report.violations.push(message);
                }
            }
        }
    }

    fn check_payments(&self, options: &Options, report: &mut Report) {
        let pending =
            |pay_id: &str, action| self.payment.pending.contains(&(pay_id.to_owned(), action));
        let ids: BTreeSet<&String> = self
            .warehouse
            .reservations
            .keys()
            .chain(self.payment.payments.keys())
            .collect();
        for pay_id in ids {
            let reservation = self.warehouse.reservations.get(pay_id);
            let payment = self.payment.payments.get(pay_id);
            use PayState as P;
            use ReservationState as R;
            let problem: Option<(String, bool)> = match (payment.map(|p| p.state), reservation) {
                (Some(P::Waiting), Some(r)) if r.state == R::Reserved => None,
                (Some(P::Payed), Some(r)) if r.state == R::Committed => None,
                (Some(P::Cancel | P::Timeout), Some(r)) if r.state == R::Released => None,
                // A settlement that failed after reserving: its guard released the stock.
                (None, Some(r)) if r.state == R::Released => None,
                (None, Some(_)) => Some((
                    "the warehouse holds stock for a payment that does not exist".into(),
                    pending(pay_id, OwedAction::Release),
                )),
                (Some(P::Payed), Some(r)) if r.state == R::Reserved => Some((
                    "paid, but the warehouse has not committed its stock".into(),
                    pending(pay_id, OwedAction::Commit),
                )),
                (Some(state @ (P::Cancel | P::Timeout)), Some(r)) if r.state == R::Reserved => {
                    Some((
                        format!("{state:?}, but the warehouse still holds its stock"),
                        pending(pay_id, OwedAction::Release),
                    ))
                }
                (Some(state), Some(r)) => Some((
                    format!("payment is {state:?} but its reservation is {:?}", r.state),
                    false,
                )),
                (Some(state), None) => Some((
                    format!("payment is {state:?} but the warehouse never reserved its stock"),
                    false,
                )),
                (None, None) => None,
            };
            if let Some((message, in_flight)) = problem {
                let message = format!("payment {pay_id}: {message}");
                if in_flight {
                    report.in_flight.push(message);
                } else {
                    report.violations.push(message);
                }
            }
            if let (Some(payment), Some(reservation)) = (payment, reservation)
                && payment.items != reservation.lines
            {
                report.violations.push(format!(
                    "payment {pay_id}: items {:?} but the reservation holds {:?}",
                    payment.items, reservation.lines
                ));
            }
            if let Some(payment) = payment
                && payment.state == P::Waiting
            {
                let stuck_after = i64::try_from(options.stuck_after.as_millis()).unwrap_or(0);
                if self.taken_at_ms > payment.expires_ms.saturating_add(stuck_after) {
                    report.violations.push(format!(
                        "payment {pay_id}: still WAITING {} ms after its window closed",
                        self.taken_at_ms - payment.expires_ms
                    ));
                }
            }
        }
    }

    fn check_wallets(&self, report: &mut Report) {
        let mut paid: BTreeMap<i64, i64> = BTreeMap::new();
        for payment in self.payment.payments.values() {
            if payment.state == PayState::Payed {
                *paid.entry(payment.account_id).or_default() += payment.total_cents;
            }
        }
        for (&account, wallet) in &self.payment.wallets {
            let paid = paid.remove(&account).unwrap_or(0);
            if wallet.balance_cents < 0 {
                report.violations.push(format!(
                    "account {account}: negative balance {}",
                    wallet.balance_cents
                ));
            }
            if wallet.opening_cents != wallet.balance_cents + paid {
                report.violations.push(format!(
                    "account {account}: opened with {} but balance {} + paid {paid} = {}",
                    wallet.opening_cents,
                    wallet.balance_cents,
                    wallet.balance_cents + paid
                ));
            }
        }
        for (account, paid) in paid {
            report.violations.push(format!(
                "account {account}: paid {paid} cents but has no wallet"
            ));
        }
    }
}

/// Reads and checks once.
pub async fn audit(sources: &Sources, options: &Options) -> Result<Report, AuditError> {
    Ok(Snapshot::read(sources).await?.check(options))
}

/// Reads and checks until the books are clean or `deadline` passes; returns the last report
/// (clean, or what was still wrong at the deadline).
pub async fn verify(
    sources: &Sources,
    options: &Options,
    deadline: Duration,
) -> Result<Report, AuditError> {
    let started = tokio::time::Instant::now();
    loop {
        let report = audit(sources, options).await?;
        if report.is_clean() || started.elapsed() >= deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`verify`], but waits until every payment is final (PAYED, CANCEL or TIMEOUT) as well:
/// for a quiet system whose payment windows have all closed, this proves that every settlement
/// was paid or gave its stock back.
pub async fn verify_final(
    sources: &Sources,
    options: &Options,
    deadline: Duration,
) -> Result<Report, AuditError> {
    let started = tokio::time::Instant::now();
    loop {
        let report = audit(sources, options).await?;
        if report.is_final() || started.elapsed() >= deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connect(url: &str, database: &'static str) -> Result<AnyConnection, AuditError> {
    sqlx::any::install_default_drivers();
    // SQLite: read-only, and never create a file that is not there.
    let url = match url.strip_prefix("sqlite://") {
        Some(path) if !path.contains('?') => format!("sqlite://{path}?mode=ro"),
        _ => url.to_owned(),
    };
    AnyConnection::connect(&url)
        .await
        .map_err(|source| AuditError::Connect { database, source })
}

/// One read-only transaction: a consistent snapshot of one database.
async fn snapshot_transaction<'c>(
    conn: &'c mut AnyConnection,
    database: &'static str,
) -> Result<Transaction<'c, Any>, AuditError> {
    let read = |source| AuditError::Read { database, source };
    let postgres = conn.backend_name().eq_ignore_ascii_case("postgresql");
    let mut tx = conn.begin().await.map_err(read)?;
    if postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(read)?;
    }
    Ok(tx)
}

/// Units per product of each owner (a reservation, a payment), from `sql`, which selects
/// `owner`, `product_id` and `amount`, one row per line.
async fn units_by_owner(
    conn: &mut AnyConnection,
    database: &'static str,
    sql: &str,
) -> Result<BTreeMap<String, BTreeMap<i64, i64>>, AuditError> {
    let read = |source| AuditError::Read { database, source };
    let rows = sqlx::query(sql).fetch_all(conn).await.map_err(read)?;
    let mut owners: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    for row in rows {
        *owners
            .entry(row.try_get("owner").map_err(read)?)
            .or_default()
            .entry(row.try_get("product_id").map_err(read)?)
            .or_default() += row.try_get::<i64, _>("amount").map_err(read)?;
    }
    Ok(owners)
}

async fn read_warehouse(url: &str) -> Result<WarehouseBooks, AuditError> {
    const DB: &str = "warehouse";
    let read = |source| AuditError::Read {
        database: DB,
        source,
    };
    let mut conn = connect(url, DB).await?;
    let mut tx = snapshot_transaction(&mut conn, DB).await?;
    let mut books = WarehouseBooks::default();
    let rows = sqlx::query(
        // PostgreSQL sums BIGINTs as NUMERIC, which sqlx's Any driver cannot decode.
        "SELECT s.product_id, s.amount, s.frozen, CAST(COALESCE((SELECT SUM(r.delta) \
         FROM stock_receipts r WHERE r.product_id = s.product_id), 0) AS BIGINT) AS put_in \
         FROM stockpiles s",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(read)?;
    for row in rows {
        books.products.insert(
            row.try_get("product_id").map_err(read)?,
            ProductStock {
                amount: row.try_get("amount").map_err(read)?,
                frozen: row.try_get("frozen").map_err(read)?,
                put_in: row.try_get("put_in").map_err(read)?,
            },
        );
    }
    let rows = sqlx::query("SELECT payment_id, state FROM reservations")
        .fetch_all(&mut *tx)
        .await
        .map_err(read)?;
    for row in rows {
        let state: String = row.try_get("state").map_err(read)?;
        let state = match state.as_str() {
            "RESERVED" => ReservationState::Reserved,
            "COMMITTED" => ReservationState::Committed,
            _ => ReservationState::Released,
        };
        books.reservations.insert(
            row.try_get("payment_id").map_err(read)?,
            Reservation {
                state,
                lines: BTreeMap::new(),
            },
        );
    }
    let lines = units_by_owner(
        &mut tx,
        DB,
        "SELECT payment_id AS owner, product_id, amount FROM reservation_lines",
    )
    .await?;
    for (payment_id, lines) in lines {
        if let Some(reservation) = books.reservations.get_mut(&payment_id) {
            reservation.lines = lines;
        }
    }
    tx.commit().await.map_err(read)?;
    Ok(books)
}

async fn read_payment(url: &str) -> Result<PaymentBooks, AuditError> {
    const DB: &str = "payment";
    let read = |source| AuditError::Read {
        database: DB,
        source,
    };
    let mut conn = connect(url, DB).await?;
    let mut tx = snapshot_transaction(&mut conn, DB).await?;
    let mut books = PaymentBooks::default();
    let rows =
        sqlx::query("SELECT pay_id, account_id, state, total_cents, expires_ms FROM payments")
            .fetch_all(&mut *tx)
            .await
            .map_err(read)?;
    for row in rows {
        let state: String = row.try_get("state").map_err(read)?;
        let state = match state.as_str() {
            "WAITING" => PayState::Waiting,
            "PAYED" => PayState::Payed,
            "CANCEL" => PayState::Cancel,
            _ => PayState::Timeout,
        };
        books.payments.insert(
            row.try_get("pay_id").map_err(read)?,
            PaymentRecord {
                account_id: row.try_get("account_id").map_err(read)?,
                state,
                total_cents: row.try_get("total_cents").map_err(read)?,
                expires_ms: row.try_get("expires_ms").map_err(read)?,
                items: BTreeMap::new(),
            },
        );
    }
    let items = units_by_owner(
        &mut tx,
        DB,
        "SELECT pay_id AS owner, product_id, amount FROM payment_items",
    )
    .await?;
    for (pay_id, items) in items {
        if let Some(payment) = books.payments.get_mut(&pay_id) {
            payment.items = items;
        }
    }
    let rows = sqlx::query("SELECT account_id, opening_cents, balance_cents FROM wallets")
        .fetch_all(&mut *tx)
        .await
        .map_err(read)?;
    for row in rows {
        books.wallets.insert(
            row.try_get("account_id").map_err(read)?,
            WalletRecord {
                opening_cents: row.try_get("opening_cents").map_err(read)?,
                balance_cents: row.try_get("balance_cents").map_err(read)?,
            },
        );
    }
    let rows = sqlx::query(
        "SELECT pay_id, action, status FROM warehouse_outbox WHERE status IN ('PENDING', 'DEAD')",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(read)?;
    for row in rows {
        let pay_id: String = row.try_get("pay_id").map_err(read)?;
        let action: String = row.try_get("action").map_err(read)?;
        let status: String = row.try_get("status").map_err(read)?;
        let action = if action == "COMMIT" {
            OwedAction::Commit
        } else {
            OwedAction::Release
        };
        let bucket = if status == "DEAD" {
            &mut books.dead
        } else {
            &mut books.pending
        };
        bucket.insert((pay_id, action));
    }
    tx.commit().await.map_err(read)?;
    Ok(books)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAY: &str = "p-1";

    /// Product 1: 10 put in, 2 held by a WAITING payment of account 7, 3 sold to it.
    fn balanced() -> Snapshot {
        let mut snapshot = Snapshot {
            taken_at_ms: 1_000_000,
            ..Snapshot::default()
        };
        snapshot.warehouse.products.insert(
            1,
            ProductStock {
                amount: 5,
                frozen: 2,
                put_in: 10,
            },
        );
        let lines = |units| BTreeMap::from([(1, units)]);
        snapshot.warehouse.reservations.insert(
            PAY.into(),
            Reservation {
                state: ReservationState::Reserved,
                lines: lines(2),
            },
        );
        snapshot.warehouse.reservations.insert(
            "p-2".into(),
            Reservation {
                state: ReservationState::Committed,
                lines: lines(3),
            },
        );
        let payment = |state, units, total_cents| PaymentRecord {
            account_id: 7,
            state,
            total_cents,
            expires_ms: 1_060_000,
            items: lines(units),
        };
        snapshot
            .payment
            .payments
            .insert(PAY.into(), payment(PayState::Waiting, 2, 2_200));
        snapshot
            .payment
            .payments
            .insert("p-2".into(), payment(PayState::Payed, 3, 3_200));
        snapshot.payment.wallets.insert(
            7,
            WalletRecord {
                opening_cents: 10_000,
                balance_cents: 6_800,
            },
        );
        snapshot
    }

    fn check(snapshot: &Snapshot) -> Report {
        snapshot.check(&Options::default())
    }

    #[test]
    fn balanced_books_are_clean() {
        let report = check(&balanced());
        assert!(report.is_clean(), "{report}");
        assert_eq!(
            (report.products, report.payments, report.wallets),
            (1, 2, 1)
        );
    }

    #[test]
    fn stock_created_or_lost_is_a_violation() {
        // A release that put the units back twice.
        let mut snapshot = balanced();
        snapshot
            .warehouse
            .products
            .get_mut(&1)
            .expect("product")
            .amount += 2;
        let report = check(&snapshot);
        assert_eq!(report.violations.len(), 1, "{report}");
        assert!(report.violations[0].contains("10 put in"), "{report}");

        // Frozen units that no reservation explains.
        let mut snapshot = balanced();
        let stock = snapshot.warehouse.products.get_mut(&1).expect("product");
        stock.frozen += 1;
        stock.amount -= 1;
        let report = check(&snapshot);
        assert!(report.violations[0].contains("frozen 3"), "{report}");
    }

    #[test]
    fn goods_and_payments_must_match() {
        // Paid, reservation never committed, and no commit owed: charged without goods.
        let mut snapshot = balanced();
        snapshot
            .payment
            .payments
            .get_mut(PAY)
            .expect("payment")
            .state = PayState::Payed;
        snapshot
            .payment
            .wallets
            .get_mut(&7)
            .expect("wallet")
            .balance_cents -= 2_200;
        let report = check(&snapshot);
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.contains("not committed")),
            "{report}"
        );

        // The same with the commit owed in the outbox: in flight, not a violation.
        snapshot
            .payment
            .pending
            .insert((PAY.into(), OwedAction::Commit));
        let report = check(&snapshot);
        assert!(report.violations.is_empty(), "{report}");
        assert_eq!(report.in_flight.len(), 2, "{report}");
        assert!(!report.is_clean());

        // Stock held for a payment that was never stored.
        let mut snapshot = balanced();
        snapshot.payment.payments.remove(PAY);
        let report = check(&snapshot);
        assert!(report.violations[0].contains("does not exist"), "{report}");

        // Different items on the two sides.
        let mut snapshot = balanced();
        snapshot
            .payment
            .payments
            .get_mut(PAY)
            .expect("payment")
            .items
            .insert(2, 1);
        assert!(!check(&snapshot).violations.is_empty());
    }

    #[test]
    fn money_created_or_lost_is_a_violation() {
        let mut snapshot = balanced();
        snapshot
            .payment
            .wallets
            .get_mut(&7)
            .expect("wallet")
            .balance_cents += 1;
        let report = check(&snapshot);
        assert_eq!(report.violations.len(), 1, "{report}");
        assert!(report.violations[0].contains("account 7"), "{report}");
    }

    #[test]
    fn a_payment_long_past_its_window_is_stuck() {
        let mut snapshot = balanced();
        snapshot.taken_at_ms = 1_060_000 + 10_001;
        let report = check(&snapshot);
        assert!(report.violations[0].contains("still WAITING"), "{report}");
        snapshot.taken_at_ms = 1_060_000 + 9_000;
        assert!(check(&snapshot).is_clean());
    }

    #[test]
    fn a_dead_outbox_entry_is_a_violation() {
        let mut snapshot = balanced();
        snapshot
            .payment
            .dead
            .insert(("p-2".into(), OwedAction::Commit));
        assert_eq!(check(&snapshot).violations.len(), 1);
    }
}
