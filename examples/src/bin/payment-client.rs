//! Reads the caller's wallet straight from the payment service, over gRPC with a Volo client.
//!
//! ```sh
//! cargo run -p bookstore-examples --bin payment-client -- --username icyfenix
//! ```

use bookstore_examples::{Args, DEADLINE, user_token};
use clap::Parser;
use rpc_idl::payment::{GetWalletRequest, PaymentServiceClientBuilder};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = user_token(&args).await?;
    let client = PaymentServiceClientBuilder::new("payment")
        .address(args.addresses.payment)
        .rpc_timeout(Some(DEADLINE))
        .build();
    let mut request = volo_grpc::Request::new(GetWalletRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let wallet = client.get_wallet(request).await?.into_inner();
    println!(
        "wallet of account {}: {} cents",
        wallet.account_id, wallet.balance_cents
    );
    Ok(())
}
