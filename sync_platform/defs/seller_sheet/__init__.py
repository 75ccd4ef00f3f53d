"""Seller sheet (Google Sheets): sellers and their properties; every seller must arrive."""
