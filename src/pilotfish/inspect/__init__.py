"""pilotfish.inspect"""
