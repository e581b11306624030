"""Streaming structured output: partial objects fill in as the JSON arrives."""

import asyncio

from _connect import gateway_config
from pydantic import BaseModel

from koine_sdk import create_koine


class City(BaseModel):
    name: str
    country: str
    population: int


class Cities(BaseModel):
    cities: list[City]


async def main() -> None:
    with gateway_config() as config:
        async with create_koine(config) as koine:
            async with koine.stream_object(
                prompt="Three large cities [[items=3]]", schema=Cities
            ) as r:
                async for partial in r.partial_object_stream:
                    print("partial:", partial)
                final = await r.object()
            print("final:", final)


if __name__ == "__main__":
    asyncio.run(main())
