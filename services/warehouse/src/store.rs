//! SQL for the warehouse: products, specifications, stock, advertisements, reservations.

use platform::database::Database;

/// Loads the demo catalogue into an empty database.
pub async fn seed_demo_catalogue(_database: &Database) -> Result<(), sqlx::Error> {
    Ok(())
}
