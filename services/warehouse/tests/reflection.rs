//! gRPC server reflection through a real client: the warehouse lists its services and hands out
//! descriptors a tool can call it with, on both protocol versions; unknown names are NOT_FOUND.

#[allow(unused_macros)]
mod common;

use common::{sqlite_config, start, within_deadline};
use futures::StreamExt;
use pilota::pb::{PbMessage, descriptor::FileDescriptorProto};
use rpc_idl::grpc::reflection::{
    v1::{
        ServerReflectionClientBuilder, ServerReflectionRequest,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    },
    v1alpha,
};

async fn ask(address: std::net::SocketAddr, requests: Vec<MessageRequest>) -> Vec<MessageResponse> {
    let client = ServerReflectionClientBuilder::new("reflection")
        .address(address)
        .build();
    let requests: Vec<_> = requests
        .into_iter()
        .map(|request| ServerReflectionRequest {
            message_request: Some(request),
            ..Default::default()
        })
        .collect();
    let count = requests.len();
    let answers = client
        .server_reflection_info(futures::stream::iter(requests))
        .await
        .expect("a reflection stream")
        .into_inner();
    let answers: Vec<_> = answers.collect().await;
    assert_eq!(answers.len(), count, "one answer per request");
    answers
        .into_iter()
        .map(|answer| {
            answer
                .expect("an answer")
                .message_response
                .expect("a response")
        })
        .collect()
}

fn files(answer: &MessageResponse) -> Vec<FileDescriptorProto> {
    let MessageResponse::FileDescriptorResponse(files) = answer else {
        panic!("expected descriptors, got {answer:?}");
    };
    files
        .file_descriptor_proto
        .iter()
        .map(|bytes| FileDescriptorProto::parse_from_bytes(bytes).expect("a file descriptor"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_and_describes_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    within_deadline(async {
        let server = start(sqlite_config(dir.path())).await;
        let answers = ask(
            server.address,
            vec![
                MessageRequest::ListServices("*".into()),
                MessageRequest::FileContainingSymbol("warehouse.WarehouseService".into()),
                MessageRequest::FileContainingSymbol(
                    "warehouse.WarehouseService.GetProduct".into(),
                ),
                MessageRequest::FileContainingSymbol("warehouse.Product".into()),
                MessageRequest::FileByFilename("grpc/health/v1/health.proto".into()),
                MessageRequest::FileContainingSymbol("warehouse.NoSuchThing".into()),
                MessageRequest::FileByFilename("nothing.proto".into()),
            ],
        )
        .await;

        let MessageResponse::ListServicesResponse(list) = &answers[0] else {
            panic!("expected a service list, got {:?}", answers[0]);
        };
        let mut names: Vec<_> = list.service.iter().map(|s| s.name.to_string()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "warehouse.WarehouseService",
            ]
        );

        for answer in &answers[1..4] {
            let files = files(answer);
            assert_eq!(files[0].name(), "warehouse.proto");
            let service = &files[0].service[0];
            assert_eq!(service.name(), "WarehouseService");
            let methods: Vec<_> = service.method.iter().map(|m| m.name()).collect();
            assert!(
                methods.contains(&"GetProduct") && methods.contains(&"ReserveStock"),
                "{methods:?}"
            );
        }
        let health = files(&answers[4]);
        assert_eq!(health[0].package(), "grpc.health.v1");

        for answer in &answers[5..] {
            let MessageResponse::ErrorResponse(error) = answer else {
                panic!("expected an error, got {answer:?}");
            };
            assert_eq!(error.error_code, 5, "NOT_FOUND: {}", error.error_message);
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1alpha_protocol_answers_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    within_deadline(async {
        let server = start(sqlite_config(dir.path())).await;
        let client = v1alpha::ServerReflectionClientBuilder::new("reflection")
            .address(server.address)
            .build();
        let request = v1alpha::ServerReflectionRequest {
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::FileByFilename(
                    "warehouse.proto".into(),
                ),
            ),
            ..Default::default()
        };
        let answers: Vec<_> = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .expect("a reflection stream")
            .into_inner()
            .collect()
            .await;
        let answer = answers[0]
            .as_ref()
            .expect("an answer")
            .message_response
            .as_ref()
            .expect("a response");
        let v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files) =
            answer
        else {
            panic!("expected descriptors, got {answer:?}");
        };
        let file = FileDescriptorProto::parse_from_bytes(&files.file_descriptor_proto[0])
            .expect("a file descriptor");
        assert_eq!(file.package(), "warehouse");
        server.stop().await;
    })
    .await;
}
