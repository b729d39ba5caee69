"""The report stage: tables (rich), JSON, CSV and Markdown renderings of plain result data."""
