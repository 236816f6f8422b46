from videoapi.cli import app

app()
