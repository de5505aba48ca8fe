//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`): lets grpcurl, Postman and other
//! tools list a server's services and fetch their descriptors, so a caller needs no `.proto`
//! files. The descriptors are the ones volo-build embedded from `idl/` at build time
//! (`with_descriptor` in `volo.workspace.yaml`), so they are exactly what the server speaks.
//!
//! A reflection stream answers each request with one response, in order; a stream ends after
//! [`MAX_REQUESTS_PER_STREAM`] requests, so one client cannot keep a call open forever.

use std::{collections::HashMap, sync::Arc};

use futures::StreamExt;
use pilota::{
    Bytes, FastStr,
    pb::{PbMessage, reflect::FileDescriptor},
};
use rpc_idl::grpc::reflection::{v1, v1alpha};
use volo_grpc::{BoxStream, Code, RecvStream, Request, Response, Status};

/// Requests one reflection stream answers before it ends.
pub const MAX_REQUESTS_PER_STREAM: usize = 1_000;

/// Every file a server's services are described by, and the index that finds them.
pub struct Reflection {
    services: Vec<FastStr>,
    /// Serialized `FileDescriptorProto` by file name, for every file and what it imports.
    files: HashMap<String, Bytes>,
    /// Each file's imports, transitively, in an order where a file comes after its imports.
    imports: HashMap<String, Vec<String>>,
    /// Fully qualified service, method, message and enum names → the file declaring them.
    symbols: HashMap<String, String>,
}

/// What a reflection request asks, whichever protocol version carried it.
enum Query {
    FileByName(FastStr),
    FileContainingSymbol(FastStr),
    FileContainingExtension { containing_type: FastStr },
    ExtensionNumbersOf(FastStr),
    ListServices,
    Nothing,
}

/// The answer, whichever protocol version carries it back.
enum Answer {
    Files(Vec<Bytes>),
    Services(Vec<FastStr>),
    Error { code: Code, message: String },
}

impl Reflection {
    /// Reflection for `services` (fully qualified names, as clients call them), described by
    /// `files` and the files they import. The reflection service itself is listed too.
    pub fn new(services: &[&str], files: &[&'static FileDescriptor]) -> Arc<Self> {
        let mut reflection = Self {
            services: services
                .iter()
                .map(|name| FastStr::new(*name))
                .chain([
                    FastStr::from_static_str("grpc.reflection.v1.ServerReflection"),
                    FastStr::from_static_str("grpc.reflection.v1alpha.ServerReflection"),
                ])
                .collect(),
            files: HashMap::new(),
            imports: HashMap::new(),
            symbols: HashMap::new(),
        };
        let reflection_files = [
            v1::file_descriptor_reflection(),
            v1alpha::file_descriptor_reflection(),
        ];
        for file in files.iter().copied().chain(reflection_files) {
            reflection.add(file);
        }
        Arc::new(reflection)
    }

    /// Indexes `file` and, first, everything it imports.
    fn add(&mut self, file: &FileDescriptor) -> Vec<String> {
        let name = file.proto().name().to_owned();
        if let Some(imports) = self.imports.get(&name) {
            return imports.clone();
        }
        let mut imports = Vec::new();
        for dependency in file.deps() {
            for import in self
                .add(dependency)
                .into_iter()
                .chain([dependency.proto().name().to_owned()])
            {
                if !imports.contains(&import) {
                    imports.push(import);
                }
            }
        }
        // A descriptor that was parsed from bytes can be written back to bytes.
        if let Ok(bytes) = file.proto().write_to_bytes() {
            self.files.insert(name.clone(), Bytes::from(bytes));
        }
        let package = file.proto().package();
        let qualify = |simple: &str| {
            if package.is_empty() {
                simple.to_owned()
            } else {
                format!("{package}.{simple}")
            }
        };
        for service in &file.proto().service {
            let service_name = qualify(service.name());
            for method in &service.method {
                self.symbols
                    .insert(format!("{service_name}.{}", method.name()), name.clone());
            }
            self.symbols.insert(service_name, name.clone());
        }
        for message in file.messages() {
            self.symbols
                .insert(message.full_name().to_owned(), name.clone());
            for nested in message.nested_messages() {
                self.symbols
                    .insert(nested.full_name().to_owned(), name.clone());
            }
            for nested in message.nested_enums() {
                self.symbols
                    .insert(nested.full_name().to_owned(), name.clone());
            }
        }
        for enumeration in file.enums() {
            self.symbols
                .insert(enumeration.full_name().to_owned(), name.clone());
        }
        self.imports.insert(name, imports.clone());
        imports
    }

    fn answer(&self, query: Query) -> Answer {
        match query {
            Query::ListServices => Answer::Services(self.services.clone()),
            Query::FileByName(name) => self.file_with_imports(&name),
            Query::FileContainingSymbol(symbol) => {
                match self.symbols.get(symbol.trim_start_matches('.')) {
                    Some(file) => self.file_with_imports(file),
                    None => not_found(format!("no symbol {symbol:?} on this server")),
                }
            }
            Query::FileContainingExtension { containing_type } => not_found(format!(
                "no extensions of {containing_type:?} on this server (it declares none)"
            )),
            Query::ExtensionNumbersOf(type_name) => not_found(format!(
                "no extensions of {type_name:?} on this server (it declares none)"
            )),
            Query::Nothing => Answer::Error {
                code: Code::InvalidArgument,
                message: "the request asks for nothing".to_owned(),
            },
        }
    }

    /// The file, then every file it imports (clients resolve a descriptor only with its
    /// imports; sending them all at once saves a round trip each).
    fn file_with_imports(&self, name: &str) -> Answer {
        let (Some(file), Some(imports)) = (self.files.get(name), self.imports.get(name)) else {
            return not_found(format!("no file {name:?} on this server"));
        };
        let mut files = vec![file.clone()];
        files.extend(
            imports
                .iter()
                .filter_map(|import| self.files.get(import).cloned()),
        );
        Answer::Files(files)
    }
}

fn not_found(message: String) -> Answer {
    Answer::Error {
        code: Code::NotFound,
        message,
    }
}

/// Answers each request of `requests` with `respond`, in order, for at most
/// [`MAX_REQUESTS_PER_STREAM`] requests.
// `Status` is volo-grpc's error type, which the stream must carry as it is.
#[allow(clippy::result_large_err)]
fn answer_stream<In, Out>(
    requests: RecvStream<In>,
    respond: impl Fn(In) -> Out + Send + 'static,
) -> BoxStream<'static, Result<Out, Status>>
where
    In: pilota::pb::Message + Default + Send + 'static,
    Out: Send + 'static,
{
    Box::pin(
        requests
            .take(MAX_REQUESTS_PER_STREAM)
            .map(move |request| request.map(&respond)),
    )
}

/// `grpc.reflection.v1.ServerReflection`.
#[derive(Clone)]
pub struct ReflectionV1(pub Arc<Reflection>);

/// `grpc.reflection.v1alpha.ServerReflection`, which grpcurl before 1.9 and many tools still ask
/// for.
#[derive(Clone)]
pub struct ReflectionV1Alpha(pub Arc<Reflection>);

/// One protocol version's wire types in and out of [`Query`] and [`Answer`]; the two versions
/// differ only in their package.
macro_rules! reflection_version {
    ($service:ident, $version:ident) => {
        impl $version::ServerReflection for $service {
            async fn server_reflection_info(
                &self,
                req: Request<RecvStream<$version::ServerReflectionRequest>>,
            ) -> Result<
                Response<BoxStream<'static, Result<$version::ServerReflectionResponse, Status>>>,
                Status,
            > {
                use $version::{
                    ErrorResponse, ExtensionRequest, FileDescriptorResponse, ListServiceResponse,
                    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
                    server_reflection_request::MessageRequest,
                    server_reflection_response::MessageResponse,
                };
                let reflection = Arc::clone(&self.0);
                let respond = move |request: ServerReflectionRequest| {
                    let query = match &request.message_request {
                        Some(MessageRequest::FileByFilename(name)) => {
                            Query::FileByName(name.clone())
                        }
                        Some(MessageRequest::FileContainingSymbol(symbol)) => {
                            Query::FileContainingSymbol(symbol.clone())
                        }
                        Some(MessageRequest::FileContainingExtension(ExtensionRequest {
                            containing_type,
                            ..
                        })) => Query::FileContainingExtension {
                            containing_type: containing_type.clone(),
                        },
                        Some(MessageRequest::AllExtensionNumbersOfType(type_name)) => {
                            Query::ExtensionNumbersOf(type_name.clone())
                        }
                        Some(MessageRequest::ListServices(_)) => Query::ListServices,
                        None => Query::Nothing,
                    };
                    let message_response = match reflection.answer(query) {
                        Answer::Files(files) => {
                            MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                                file_descriptor_proto: files,
                            })
                        }
                        Answer::Services(names) => {
                            MessageResponse::ListServicesResponse(ListServiceResponse {
                                service: names
                                    .into_iter()
                                    .map(|name| ServiceResponse { name })
                                    .collect(),
                            })
                        }
                        Answer::Error { code, message } => {
                            MessageResponse::ErrorResponse(ErrorResponse {
                                error_code: i32::from(code),
                                error_message: message.into(),
                            })
                        }
                    };
                    ServerReflectionResponse {
                        valid_host: request.host.clone(),
                        original_request: Some(request),
                        message_response: Some(message_response),
                    }
                };
                Ok(Response::new(answer_stream(req.into_inner(), respond)))
            }
        }
    };
}

reflection_version!(ReflectionV1, v1);
reflection_version!(ReflectionV1Alpha, v1alpha);

/// Adds `grpc.reflection.v1` and `v1alpha` to `router`, listing `services` (fully qualified)
/// and describing them by `files` and what those import.
pub fn add_to(
    router: volo_grpc::server::Router,
    services: &[&str],
    files: &[&'static FileDescriptor],
) -> volo_grpc::server::Router {
    use volo_grpc::server::ServiceBuilder;
    let reflection = Reflection::new(services, files);
    router
        .add_service(
            ServiceBuilder::new(v1::ServerReflectionServer::new(ReflectionV1(Arc::clone(
                &reflection,
            ))))
            .build(),
        )
        .add_service(
            ServiceBuilder::new(v1alpha::ServerReflectionServer::new(ReflectionV1Alpha(
                reflection,
            )))
            .build(),
        )
}
