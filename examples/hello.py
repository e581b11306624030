"""Basic text generation."""

import asyncio

from _connect import gateway_config

from koine_sdk import create_koine


async def main() -> None:
    with gateway_config() as config:
        async with create_koine(config) as koine:
            result = await koine.generate_text(prompt="Hello, how are you?")
            print(result.text)
            print(f"tokens: {result.usage.total_tokens}, session: {result.session_id}")


if __name__ == "__main__":
    asyncio.run(main())
