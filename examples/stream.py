"""Real-time streaming: text is printed as it arrives."""

import asyncio

from _connect import gateway_config

from koine_sdk import create_koine


async def main() -> None:
    with gateway_config() as config:
        async with create_koine(config) as koine:
            async with koine.stream_text(prompt="Write a haiku about rivers") as r:
                async for chunk in r.text_stream:
                    print(chunk, end="", flush=True)
                print()
                usage = await r.usage()
                print(f"tokens: {usage.total_tokens}")


if __name__ == "__main__":
    asyncio.run(main())
