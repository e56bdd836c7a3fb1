"""Example applications (``make demo`` runs ``examples.demo_app``)."""
