"""Everything that touches keys or ciphertext.

A library of plain functions and small classes over bytes and streams. It
imports neither Flask nor SQLAlchemy, so the offline review tool can use it on
a machine that has never seen the server.
"""
