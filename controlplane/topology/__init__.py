"""The topology of the 1+1+N+14 cloud: the organisation tree and the clouds.

`model` and `document` are pure (no ORM); `store` persists them and
`apply` turns a validated document into a diff and writes it.
"""
