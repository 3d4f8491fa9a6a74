"""pilotfish.sources"""
