"""Structured output validated by a Pydantic model."""

import asyncio

from _connect import gateway_config
from pydantic import BaseModel

from koine_sdk import create_koine


class Ingredient(BaseModel):
    name: str
    grams: float


class Recipe(BaseModel):
    title: str
    servings: int
    ingredients: list[Ingredient]


async def main() -> None:
    with gateway_config() as config:
        async with create_koine(config) as koine:
            result = await koine.generate_object(
                prompt="A simple pancake recipe for two", schema=Recipe
            )
            recipe = result.object  # a Recipe instance
            print(f"{recipe.title} (serves {recipe.servings})")
            for item in recipe.ingredients:
                print(f"  - {item.name}: {item.grams} g")


if __name__ == "__main__":
    asyncio.run(main())
