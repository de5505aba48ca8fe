//! SQL for the warehouse: products, specifications, stock, advertisements and the reservation
//! ledger. One SQL text serves SQLite and PostgreSQL (`platform::sql`, `$n` placeholders).
//!
//! The catalogue (products, specifications, advertisements) is answered from memory for up to
//! `database.read_cache_ms` (`platform::read_cache`); every write that changes it invalidates
//! it. Stock and reservations always read the database.
//!
//! Every multi-statement write runs in one `Database::write` transaction. Stock and
//! reservations are `stock.rs`'s.

mod stock;

use std::{collections::HashMap, sync::Arc};

use platform::{
    database::{Connection, Database, WriteTransaction},
    read_cache::ReadCache,
    sql::{self, Row, SqlError},
};

use crate::{
    demo,
    domain::{
        Advertisement, Product, ProductDraft, ProductId, ReservationState, Specification,
        SpecificationDraft, StorageFailure, WarehouseError,
    },
};

/// The `warehouse_meta` key recording that the demo catalogue was considered for seeding.
const DEMO_SEEDED_KEY: &str = "demo_catalogue_seeded";

/// The one conversion of database errors into domain errors.
impl From<SqlError> for WarehouseError {
    fn from(error: SqlError) -> Self {
        let unavailable = error.is_unavailable();
        let source = Box::new(error);
        WarehouseError::Storage(if unavailable {
            StorageFailure::Unavailable(source)
        } else {
            StorageFailure::Failed(source)
        })
    }
}

/// Counts a reservation that reached `state` (`warehouse_reservations_total{state}`), once it
/// is committed.
fn reservation_changed(state: ReservationState) {
    metrics::counter!("warehouse_reservations_total", "state" => state.as_str()).increment(1);
}

/// Data that breaks one of the store's own invariants.
#[derive(Debug, thiserror::Error)]
#[error("inconsistent warehouse data: {0}")]
struct Inconsistent(String);

fn inconsistent(message: String) -> WarehouseError {
    WarehouseError::Storage(StorageFailure::Failed(Box::new(Inconsistent(message))))
}

/// The warehouse's tables behind typed operations. Cheap to clone (it shares the pool).
#[derive(Clone)]
pub struct Store {
    database: Database,
    catalogue: Arc<ReadCache<(), Arc<Catalogue>>>,
}

/// What shoppers browse, as read from the database at one moment.
#[derive(Debug)]
struct Catalogue {
    /// Ordered by id.
    products: Vec<Product>,
    advertisements: Vec<Advertisement>,
}

impl Store {
    pub fn new(database: Database) -> Self {
        let catalogue = Arc::new(database.read_cache(1));
        Self {
            database,
            catalogue,
        }
    }

    /// Every product with its specifications, by id.
    pub async fn list_products(&self) -> Result<Vec<Product>, WarehouseError> {
        Ok(self.catalogue().await?.products.clone())
    }

    pub async fn product(&self, id: ProductId) -> Result<Product, WarehouseError> {
        let catalogue = self.catalogue().await?;
        catalogue
            .products
            .binary_search_by_key(&id, |product| product.id)
            .map(|index| catalogue.products[index].clone())
            .map_err(|_| WarehouseError::ProductNotFound(id))
    }

    pub async fn advertisements(&self) -> Result<Vec<Advertisement>, WarehouseError> {
        Ok(self.catalogue().await?.advertisements.clone())
    }

    /// The catalogue from memory while fresh (`database.read_cache_ms`), otherwise from the
    /// database. Every write below that changes a product or an advertisement invalidates it.
    async fn catalogue(&self) -> Result<Arc<Catalogue>, WarehouseError> {
        let loaded = self
            .catalogue
            .get_or_load(&(), || async {
                Ok::<_, WarehouseError>(Some(Arc::new(load_catalogue(&self.database).await?)))
            })
            .await?;
        loaded.ok_or_else(|| inconsistent("the catalogue loader answered nothing".to_owned()))
    }

    /// Runs a write that changes products or advertisements, and invalidates the catalogue in
    /// memory once it has ended: on the write's own task, so a caller that gives up cannot skip
    /// it, and after the commit, so no load that began earlier is kept.
    async fn write_catalogue<T, F, Fut>(&self, work: F) -> Result<T, WarehouseError>
    where
        F: FnOnce(WriteTransaction) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, WarehouseError>> + Send + 'static,
        T: Send + 'static,
    {
        let catalogue = Arc::clone(&self.catalogue);
        self.database
            .write(move |transaction| async move {
                let outcome = work(transaction).await;
                catalogue.invalidate_all();
                outcome
            })
            .await
    }

    /// Saves a new product, its specifications and an empty stock row.
    pub async fn create_product(&self, draft: &ProductDraft) -> Result<Product, WarehouseError> {
        let draft = draft.clone();
        self.write_catalogue(move |mut tx| async move {
            let product = insert_product(&mut tx, &draft, 0).await?;
            tx.commit().await?;
            Ok(product)
        })
        .await
    }

    /// Overwrites a product's fields and replaces its specifications.
    pub async fn update_product(
        &self,
        id: ProductId,
        draft: &ProductDraft,
    ) -> Result<Product, WarehouseError> {
        let draft = draft.clone();
        self.write_catalogue(move |mut tx| async move {
            let updated = sql::query(
                "UPDATE products SET title = $1, price_cents = $2, rate = $3, description = $4, \
                     cover = $5, detail = $6 WHERE id = $7",
            )
            .bind_product(&draft)
            .bind(id.get())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(WarehouseError::ProductNotFound(id));
            }
            sql::query("DELETE FROM specifications WHERE product_id = $1")
                .bind(id.get())
                .execute(&mut *tx)
                .await?;
            insert_specifications(&mut tx, id, draft.specifications()).await?;
            let product = load_product(&mut tx, id)
                .await?
                .ok_or(WarehouseError::ProductNotFound(id))?;
            tx.commit().await?;
            Ok(product)
        })
        .await
    }

    /// Deletes a product with its specifications, stock and advertisements. Reservation lines
    /// naming it stay in the ledger as history.
    pub async fn delete_product(&self, id: ProductId) -> Result<(), WarehouseError> {
        self.write_catalogue(move |mut tx| async move {
            // Explicit deletes rather than ON DELETE CASCADE alone: SQLite enforces foreign keys
            // only when the connection enabled them.
            for sql in [
                "DELETE FROM specifications WHERE product_id = $1",
                "DELETE FROM advertisements WHERE product_id = $1",
                "DELETE FROM stockpiles WHERE product_id = $1",
            ] {
                sql::query(sql).bind(id.get()).execute(&mut *tx).await?;
            }
            let deleted = sql::query("DELETE FROM products WHERE id = $1")
                .bind(id.get())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(WarehouseError::ProductNotFound(id));
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Loads the demo catalogue if this database never had one and holds no products. Returns
    /// whether it did. Safe with several replicas starting at once: the marker row decides.
    pub async fn seed_demo_catalogue(&self) -> Result<bool, WarehouseError> {
        self.write_catalogue(move |mut tx| async move {
            let claimed = sql::query(
                "INSERT INTO warehouse_meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO NOTHING",
            )
            .bind(DEMO_SEEDED_KEY)
            .bind(platform::clock::now_ms().to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                return Ok(false);
            }
            let products: i64 = sql::query("SELECT COUNT(*) FROM products")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if products > 0 {
                // Someone's real catalogue: remember that seeding was considered, add nothing.
                tx.commit().await?;
                return Ok(false);
            }
            let mut ids = Vec::with_capacity(demo::BOOKS.len());
            for book in demo::BOOKS {
                let draft = book.draft()?;
                ids.push(insert_product(&mut tx, &draft, book.stock).await?.id);
            }
            for ad in demo::ADVERTISEMENTS {
                let product_id = ids.get(ad.book).ok_or_else(|| {
                    inconsistent(format!("demo advertisement {} names no book", ad.image))
                })?;
                sql::query("INSERT INTO advertisements (image, product_id) VALUES ($1, $2)")
                    .bind(ad.image)
                    .bind(product_id.get())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }
}

async fn insert_product(
    conn: &mut Connection,
    draft: &ProductDraft,
    stock: i64,
) -> Result<Product, WarehouseError> {
    let id: i64 = sql::query(
        "INSERT INTO products (title, price_cents, rate, description, cover, detail) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind_product(draft)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    let id = ProductId::from_stored(id);
    let specifications = insert_specifications(conn, id, draft.specifications()).await?;
    sql::query("INSERT INTO stockpiles (product_id, amount, frozen) VALUES ($1, $2, 0)")
        .bind(id.get())
        .bind(stock)
        .execute(&mut *conn)
        .await?;
    if stock != 0 {
        record_receipt(conn, id, stock, stock).await?;
    }
    Ok(Product {
        id,
        title: draft.title().to_owned(),
        price_cents: draft.price_cents(),
        rate: draft.rate(),
        description: draft.description().to_owned(),
        cover: draft.cover().to_owned(),
        detail: draft.detail().to_owned(),
        specifications,
    })
}

/// Records a change of `product_id`'s sellable amount by `delta`, leaving `amount_after`.
async fn record_receipt(
    conn: &mut Connection,
    product_id: ProductId,
    delta: i64,
    amount_after: i64,
) -> Result<(), WarehouseError> {
    sql::query(
        "INSERT INTO stock_receipts (product_id, delta, amount_after, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(product_id.get())
    .bind(delta)
    .bind(amount_after)
    .bind(platform::clock::now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_specifications(
    conn: &mut Connection,
    product_id: ProductId,
    drafts: &[SpecificationDraft],
) -> Result<Vec<Specification>, WarehouseError> {
    let mut saved = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let id: i64 = sql::query(
            "INSERT INTO specifications (product_id, item, value) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .bind(product_id.get())
        .bind(draft.item())
        .bind(draft.value())
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        saved.push(Specification {
            id,
            item: draft.item().to_owned(),
            value: draft.value().to_owned(),
            product_id,
        });
    }
    Ok(saved)
}

/// Binds a product's columns in the order both product statements name them: title,
/// price_cents, rate, description, cover, detail.
trait BindProduct<'q> {
    fn bind_product(self, draft: &'q ProductDraft) -> Self;
}

impl<'q> BindProduct<'q> for sql::Query<'q> {
    fn bind_product(self, draft: &'q ProductDraft) -> Self {
        self.bind(draft.title())
            .bind(draft.price_cents())
            .bind(draft.rate())
            .bind(draft.description())
            .bind(draft.cover())
            .bind(draft.detail())
    }
}

/// Every product with its specifications, and the advertisements: three queries whatever the
/// catalogue's size.
async fn load_catalogue(database: &Database) -> Result<Catalogue, WarehouseError> {
    let pool = database;
    let rows = sql::query(
        "SELECT id, title, price_cents, rate, description, cover, detail \
         FROM products ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let mut products = rows
        .iter()
        .map(product_row)
        .collect::<Result<Vec<_>, _>>()?;
    let rows = sql::query("SELECT id, product_id, item, value FROM specifications ORDER BY id")
        .fetch_all(pool)
        .await?;
    let mut by_product: HashMap<ProductId, Vec<Specification>> = HashMap::new();
    for row in &rows {
        let spec = specification_row(row)?;
        by_product.entry(spec.product_id).or_default().push(spec);
    }
    // A product created between the two queries simply has no specifications yet in this
    // answer (and the write that created it has invalidated what this load keeps);
    // specifications of a product deleted in between are dropped with it.
    for product in &mut products {
        product.specifications = by_product.remove(&product.id).unwrap_or_default();
    }
    let rows = sql::query("SELECT id, image, product_id FROM advertisements ORDER BY id")
        .fetch_all(pool)
        .await?;
    let advertisements = rows
        .iter()
        .map(advertisement_row)
        .collect::<Result<_, _>>()?;
    Ok(Catalogue {
        products,
        advertisements,
    })
}

/// A product with its specifications, in one statement (on PostgreSQL each statement is a round
/// trip to the server).
async fn load_product(
    conn: &mut Connection,
    id: ProductId,
) -> Result<Option<Product>, WarehouseError> {
    let rows = sql::query(
        "SELECT p.id, p.title, p.price_cents, p.rate, p.description, p.cover, p.detail, \
         s.id AS specification_id, s.item, s.value \
         FROM products p LEFT JOIN specifications s ON s.product_id = p.id \
         WHERE p.id = $1 ORDER BY s.id",
    )
    .bind(id.get())
    .fetch_all(&mut *conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut product = product_row(first)?;
    for row in &rows {
        // The one row of a product without specifications has NULLs on the right.
        if let Some(specification_id) = row.try_get::<Option<i64>, _>("specification_id")? {
            product.specifications.push(Specification {
                id: specification_id,
                item: row.try_get("item")?,
                value: row.try_get("value")?,
                product_id: product.id,
            });
        }
    }
    Ok(Some(product))
}

fn product_row(row: &Row) -> Result<Product, SqlError> {
    Ok(Product {
        id: ProductId::from_stored(row.try_get("id")?),
        title: row.try_get("title")?,
        price_cents: row.try_get("price_cents")?,
        rate: row.try_get("rate")?,
        description: row.try_get("description")?,
        cover: row.try_get("cover")?,
        detail: row.try_get("detail")?,
        specifications: Vec::new(),
    })
}

fn specification_row(row: &Row) -> Result<Specification, SqlError> {
    Ok(Specification {
        id: row.try_get("id")?,
        item: row.try_get("item")?,
        value: row.try_get("value")?,
        product_id: ProductId::from_stored(row.try_get("product_id")?),
    })
}

fn advertisement_row(row: &Row) -> Result<Advertisement, SqlError> {
    Ok(Advertisement {
        id: row.try_get("id")?,
        image: row.try_get("image")?,
        product_id: ProductId::from_stored(row.try_get("product_id")?),
    })
}
