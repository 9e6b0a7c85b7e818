"""ade HTTP routes (filled by its issue)."""
from fastapi import APIRouter

router = APIRouter()
