"""How events are encoded: the transcoder and cipher of the store, the JSON of everything that
leaves it decrypted, which fields are secret, and the generated event catalogue."""
