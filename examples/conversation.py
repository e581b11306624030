"""Multi-turn sessions: pass the previous result's session_id to continue."""

import asyncio

from _connect import gateway_config

from koine_sdk import create_koine


async def main() -> None:
    with gateway_config() as config:
        async with create_koine(config) as koine:
            first = await koine.generate_text(prompt="My name is Ada.")
            print("turn 1:", first.text)
            second = await koine.generate_text(
                prompt="What is my name?", session_id=first.session_id
            )
            print("turn 2:", second.text)
            # Streams too: the id to continue with is known once the stream has ended.
            async with koine.stream_text(
                prompt="And once more?", session_id=second.session_id
            ) as r:
                print("turn 3:", await r.text())
                print("session:", await r.session_id())


if __name__ == "__main__":
    asyncio.run(main())
