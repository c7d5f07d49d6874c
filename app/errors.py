raise ImportError("app/errors.py moved to models/errors.py (models/ must not import app/): "
                  "use `from models.errors import ...`")
