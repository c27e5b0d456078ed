"""Deep linear networks: implicit acceleration (Arora, Cohen & Hazan 2018) and landscape certificates
(Laurent & von Brecht 2018). numpy/scipy theory; torch only where a model is trained."""
