"""Recording: the recorder, the recording proxy, redaction and the secret scanner."""
