//! Stock and the reservation ledger: an administrator's stock changes, and reservations made,
//! committed and released. Stock only ever moves through conditional UPDATEs
//! (`… WHERE amount >= n`) whose row counts are checked, so the database itself refuses to
//! oversell, whatever the concurrency. Always read from the database, never from the catalogue
//! cache.

use std::collections::BTreeMap;

use platform::{
    database::Connection,
    sql::{self, Row, SqlError},
};

use super::{Store, inconsistent, record_receipt, reservation_changed};
use crate::domain::{
    PaymentId, ProductId, Reservation, ReservationLine, ReservationState, Stock, StockAmount,
    StockReservation, WarehouseError,
};

impl Store {
    pub async fn stock(&self, product_id: ProductId) -> Result<Stock, WarehouseError> {
        let row = sql::query(
            "SELECT id, product_id, amount, frozen FROM stockpiles WHERE product_id = $1",
        )
        .bind(product_id.get())
        .fetch_optional(&self.database)
        .await?;
        match row {
            Some(row) => Ok(stock_row(&row)?),
            None => Err(WarehouseError::ProductNotFound(product_id)),
        }
    }

    /// Sets the sellable amount; the frozen amount belongs to open reservations and stays. The
    /// signed difference is recorded as a stock receipt in the same transaction, so the stock
    /// ever put in can be audited independently of the stock rows.
    pub async fn set_stock_amount(
        &self,
        product_id: ProductId,
        amount: StockAmount,
    ) -> Result<Stock, WarehouseError> {
        self.database
            .write(move |mut tx| async move {
                // Lock the row before reading it (a no-op UPDATE, since SQLite has no SELECT … FOR
                // UPDATE): a reservation running beside us must not move `amount` between the read and
                // the write, or the recorded difference would be wrong.
                let locked =
                    sql::query("UPDATE stockpiles SET amount = amount WHERE product_id = $1")
                        .bind(product_id.get())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if locked == 0 {
                    return Err(WarehouseError::ProductNotFound(product_id));
                }
                let before: i64 = sql::query("SELECT amount FROM stockpiles WHERE product_id = $1")
                    .bind(product_id.get())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("amount")?;
                let row = sql::query(
                    "UPDATE stockpiles SET amount = $1 WHERE product_id = $2 \
                     RETURNING id, product_id, amount, frozen",
                )
                .bind(amount.get())
                .bind(product_id.get())
                .fetch_one(&mut *tx)
                .await?;
                let stock = stock_row(&row)?;
                record_receipt(&mut tx, product_id, amount.get() - before, amount.get()).await?;
                tx.commit().await?;
                Ok(stock)
            })
            .await
    }

    /// Holds stock for a payment, all or nothing. A payment id that already has a reservation
    /// of the same items gets that reservation back (in whatever state it is) and nothing
    /// changes; other items under the same id are refused.
    pub async fn reserve(&self, request: &StockReservation) -> Result<Reservation, WarehouseError> {
        let request = request.clone();
        self.database
            .write(move |mut tx| async move {
                let payment_id = &request.payment_id;
                let lines = request.items.lines();
                let now = platform::clock::now_ms();
                // Claiming the payment id first serialises repeats of the same reservation: on
                // PostgreSQL a concurrent repeat waits here for this transaction to end.
                let claimed = sql::query(
                    "INSERT INTO reservations (payment_id, state, created_at, updated_at) \
                     VALUES ($1, $2, $3, $3) ON CONFLICT (payment_id) DO NOTHING",
                )
                .bind(payment_id.as_str())
                .bind(ReservationState::Reserved.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if claimed == 0 {
                    let existing =
                        load_reservation(&mut tx, payment_id)
                            .await?
                            .ok_or_else(|| {
                                inconsistent(format!("reservation {payment_id} vanished"))
                            })?;
                    return if existing.lines == lines {
                        Ok(existing)
                    } else {
                        Err(WarehouseError::ReservationConflict(payment_id.clone()))
                    };
                }
                // Lines are ordered by product id, so concurrent reservations lock stock rows in the
                // same order and cannot deadlock.
                let mut unit_prices = BTreeMap::new();
                for line in lines {
                    let taken = sql::query(
                        "UPDATE stockpiles SET amount = amount - $1, frozen = frozen + $1 \
                         WHERE product_id = $2 AND amount >= $1",
                    )
                    .bind(line.amount)
                    .bind(line.product_id.get())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if taken != 1 {
                        // Dropping `tx` rolls back every line taken so far and the claimed id.
                        return Err(shortage(&mut tx, *line).await?);
                    }
                    // The line is recorded with the price it is taken at, which is the answer's.
                    let price: i64 = sql::query(
                        "INSERT INTO reservation_lines (payment_id, product_id, amount, \
                         price_cents) SELECT $1, id, $3, price_cents FROM products WHERE id = $2 \
                         RETURNING price_cents",
                    )
                    .bind(payment_id.as_str())
                    .bind(line.product_id.get())
                    .bind(line.amount)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| {
                        inconsistent(format!("product {} has stock but no row", line.product_id))
                    })?
                    .try_get("price_cents")?;
                    unit_prices.insert(line.product_id, price);
                }
                tx.commit().await?;
                reservation_changed(ReservationState::Reserved);
                Ok(Reservation {
                    payment_id: payment_id.clone(),
                    state: ReservationState::Reserved,
                    lines: lines.to_vec(),
                    unit_prices,
                })
            })
            .await
    }

    /// The reserved units leave for good (`frozen -= n`).
    pub async fn commit(&self, payment_id: &PaymentId) -> Result<Reservation, WarehouseError> {
        self.settle(payment_id, ReservationState::Committed).await
    }

    /// The reserved units go back on sale (`amount += n; frozen -= n`).
    pub async fn release(&self, payment_id: &PaymentId) -> Result<Reservation, WarehouseError> {
        self.settle(payment_id, ReservationState::Released).await
    }

    /// Moves a RESERVED reservation to `target` and its units out of `frozen`. Already at
    /// `target`: nothing changes and the reservation is returned. At the other final state:
    /// refused.
    async fn settle(
        &self,
        payment_id: &PaymentId,
        target: ReservationState,
    ) -> Result<Reservation, WarehouseError> {
        let payment_id = payment_id.clone();
        self.database
            .write(move |mut tx| async move {
                // The state change comes first and is conditional: of a concurrent commit and release
                // of one payment, exactly one sees RESERVED (PostgreSQL re-checks the WHERE clause after
                // waiting for the row lock).
                let moved = sql::query(
                    "UPDATE reservations SET state = $1, updated_at = $2 \
                     WHERE payment_id = $3 AND state = $4",
                )
                .bind(target.as_str())
                .bind(platform::clock::now_ms())
                .bind(payment_id.as_str())
                .bind(ReservationState::Reserved.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let reservation = load_reservation(&mut tx, &payment_id)
                    .await?
                    .ok_or_else(|| WarehouseError::ReservationNotFound(payment_id.clone()))?;
                if moved == 0 {
                    return if reservation.state == target {
                        Ok(reservation)
                    } else {
                        Err(WarehouseError::WrongState {
                            payment_id: payment_id.clone(),
                            state: reservation.state,
                            action: target.action(),
                        })
                    };
                }
                let sql = match target {
                    ReservationState::Released => {
                        "UPDATE stockpiles SET amount = amount + $1, frozen = frozen - $1 \
                         WHERE product_id = $2 AND frozen >= $1"
                    }
                    _ => {
                        "UPDATE stockpiles SET frozen = frozen - $1 \
                         WHERE product_id = $2 AND frozen >= $1"
                    }
                };
                for line in &reservation.lines {
                    let changed = sql::query(sql)
                        .bind(line.amount)
                        .bind(line.product_id.get())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if changed != 1 {
                        let exists = sql::query("SELECT id FROM stockpiles WHERE product_id = $1")
                            .bind(line.product_id.get())
                            .fetch_optional(&mut *tx)
                            .await?
                            .is_some();
                        if exists {
                            return Err(inconsistent(format!(
                                "product {} has less frozen stock than payment {payment_id} holds",
                                line.product_id
                            )));
                        }
                        // The product was deleted while reserved: its stock went with it.
                        tracing::warn!(
                            product_id = line.product_id.get(),
                            %payment_id,
                            "reservation line names a deleted product"
                        );
                    }
                }
                tx.commit().await?;
                reservation_changed(target);
                Ok(Reservation {
                    state: target,
                    ..reservation
                })
            })
            .await
    }
}

/// Why a stock row refused `line`: the product is unknown, or it has too little.
async fn shortage(
    conn: &mut Connection,
    line: ReservationLine,
) -> Result<WarehouseError, WarehouseError> {
    let row = sql::query(
        "SELECT p.title, s.amount FROM products p JOIN stockpiles s ON s.product_id = p.id \
         WHERE p.id = $1",
    )
    .bind(line.product_id.get())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        None => WarehouseError::ProductNotFound(line.product_id),
        Some(row) => WarehouseError::InsufficientStock {
            product_id: line.product_id,
            title: row.try_get("title")?,
            requested: line.amount,
            available: row.try_get("amount")?,
        },
    })
}

async fn load_reservation(
    conn: &mut Connection,
    payment_id: &PaymentId,
) -> Result<Option<Reservation>, WarehouseError> {
    let row = sql::query("SELECT state FROM reservations WHERE payment_id = $1")
        .bind(payment_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let stored: String = row.try_get("state")?;
    let state = ReservationState::from_stored(&stored).ok_or_else(|| {
        inconsistent(format!(
            "reservation {payment_id} has unknown state {stored:?}"
        ))
    })?;
    let rows = sql::query(
        "SELECT product_id, amount, price_cents FROM reservation_lines WHERE payment_id = $1 \
         ORDER BY product_id",
    )
    .bind(payment_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut lines = Vec::with_capacity(rows.len());
    let mut unit_prices = BTreeMap::new();
    for row in &rows {
        let product_id = ProductId::from_stored(row.try_get("product_id")?);
        lines.push(ReservationLine {
            product_id,
            amount: row.try_get("amount")?,
        });
        if let Some(price) = row.try_get::<Option<i64>, _>("price_cents")? {
            unit_prices.insert(product_id, price);
        }
    }
    Ok(Some(Reservation {
        payment_id: payment_id.clone(),
        state,
        lines,
        unit_prices,
    }))
}

fn stock_row(row: &Row) -> Result<Stock, SqlError> {
    Ok(Stock {
        id: row.try_get("id")?,
        product_id: ProductId::from_stored(row.try_get("product_id")?),
        amount: row.try_get("amount")?,
        frozen: row.try_get("frozen")?,
    })
}
