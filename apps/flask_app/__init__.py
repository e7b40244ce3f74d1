"""Flask family (WSGI): the contract as Flask views; its twin is apps/quart_app."""
