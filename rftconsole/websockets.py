"""What the console's websockets share: the close codes a page reads to tell the user why.

4401 and 4404 mirror HTTP's 401 and 404 (4000-4999 is the range RFC 6455 leaves to
applications): a socket that is not signed in, or that asks for an object that is not the user's
or is gone. Another owner's object answers 4404 too, exactly like a missing one.
"""

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
