//! Browses the catalogue straight from the warehouse, over gRPC with a Volo client: the product
//! list needs no token; a product's stock needs an administrator's.
//!
//! ```sh
//! cargo run -p bookstore-examples --bin warehouse-client
//! ```

use bookstore_examples::{Args, DEADLINE, user_token};
use clap::Parser;
use rpc_idl::warehouse::{GetStockRequest, ListProductsRequest, WarehouseServiceClientBuilder};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = WarehouseServiceClientBuilder::new("warehouse")
        .address(args.addresses.warehouse)
        .rpc_timeout(Some(DEADLINE))
        .build();

    let products = client
        .list_products(ListProductsRequest {})
        .await?
        .into_inner()
        .products;
    println!("{} products", products.len());
    let first = products
        .first()
        .ok_or_else(|| anyhow::anyhow!("the catalogue is empty"))?;
    println!(
        "first: #{} {} ({} cents)",
        first.id, first.title, first.price_cents
    );

    let token = user_token(&args).await?;
    let mut request = volo_grpc::Request::new(GetStockRequest {
        product_id: first.id,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let stock = client.get_stock(request).await?.into_inner();
    println!(
        "stock of #{}: {} on sale, {} reserved",
        first.id, stock.amount, stock.frozen
    );
    Ok(())
}
