"""The API for uvicorn (local stack) or Gunicorn with Uvicorn workers (container service)."""

from functions.app import create_app
from functions.observability import configure_process
from videoapi.settings import get_settings

configure_process(get_settings())
app = create_app(get_settings())
