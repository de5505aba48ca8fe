"""Calls the warehouse directly with grpcio, learning the service from server reflection:
no .proto files, the way grpcurl or Postman discover it.

    pip install grpcio grpcio-reflection protobuf
    python examples/python/warehouse_client.py [--target 127.0.0.1:8820]

Lists the services, describes warehouse.WarehouseService, then calls ListProducts and
GetProduct with message classes built from the reflected descriptors. Exits non-zero on the
first unexpected answer.
"""

import argparse

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "warehouse.WarehouseService"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:8820")
    args = parser.parse_args()
    with grpc.insecure_channel(args.target) as channel:
        reflection = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(reflection.get_services())
        print("services:", ", ".join(services))
        if SERVICE not in services:
            raise SystemExit(f"{SERVICE} is not listed")
        pool = descriptor_pool.DescriptorPool(reflection)
        service = pool.FindServiceByName(SERVICE)
        print(f"{SERVICE}:", ", ".join(method.name for method in service.methods))

        def call(method_name, **fields):
            method = service.methods_by_name[method_name]
            request_type = message_factory.GetMessageClass(method.input_type)
            response_type = message_factory.GetMessageClass(method.output_type)
            stub = channel.unary_unary(
                f"/{SERVICE}/{method_name}",
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )
            return stub(request_type(**fields), timeout=5)

        products = call("ListProducts").products
        if not products:
            raise SystemExit("the catalogue is empty")
        print(f"ListProducts: {len(products)} products")
        product = call("GetProduct", id=products[0].id)
        if product.id != products[0].id:
            raise SystemExit(f"asked for product {products[0].id}, got {product.id}")
        print(f"GetProduct: #{product.id} {product.title}, {len(product.specifications)} specifications")
        try:
            call("GetProduct", id=999999999)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise SystemExit(f"a missing product answered {error.code()}")
            print(f"GetProduct of a missing product: {error.code().name}")
        else:
            raise SystemExit("a missing product was found")


if __name__ == "__main__":
    main()
